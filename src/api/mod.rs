//! The Kubernetes API model: the resource registry, selectors, defaulting, validation,
//! server-side printing and `Status` errors. Pure functions over JSON objects; no I/O.

pub mod defaults;
pub mod managed;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod smp;
pub mod status;
pub mod strict;
pub mod structural;
pub mod table;
pub mod validation;
