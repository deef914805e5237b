//! One module per subcommand.

pub mod net;
pub mod secrets;
