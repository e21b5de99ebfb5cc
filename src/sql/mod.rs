//! SQL over the store: the DataFusion session with every table registered,
//! result printing, and the interactive shell.

pub mod output;
pub mod session;
pub mod shell;
