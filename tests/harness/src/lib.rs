pub mod bench;
pub mod env;
pub mod es;
pub mod fixtures;
pub mod hostile;
pub mod kube;
pub mod sandbox;
