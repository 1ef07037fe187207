//! The Genesys Cloud user-update workflow, on top of the scheduler.
//!
//! [`UserUpdate`] is the machine an adapter drives to apply a sheet of [`crate::change`] rows:
//! it authenticates, reads users in batches, compares, PATCHes only what differs with the user's
//! version, and handles version conflicts and expired tokens, reporting one [`RowReport`] per row.

pub mod export;
mod outcome;
mod secret;
mod token;
pub mod user;
pub mod validate;
mod workflow;

pub use outcome::{RowOutcome, RowReport};
pub use secret::{Credentials, Secret};
pub use token::AuthFailure;
pub use user::{CurrentUser, Field, FieldChange};
pub use workflow::{Job, Key, MAX_BATCH, RequestCounts, UserUpdate, WorkflowConfig};
