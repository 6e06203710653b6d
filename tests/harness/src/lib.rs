pub mod es;
pub mod kube;
