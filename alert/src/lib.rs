//! # strata-alert
//!
//! Alert rules written in SQL, their evaluation, alert state, and the alerter (routing,
//! grouping, inhibition, silences, correlation into incidents, escalation) with its
//! notifiers. Nothing here yet: the alerting issue builds it on `strata-query`, and may
//! use `strata-storage` only for its state in the catalog database.
