pub mod bench;
pub mod env;
pub mod es;
pub mod kube;
pub mod sandbox;
