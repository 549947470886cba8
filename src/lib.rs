//! sonde: a Prometheus-compatible time-series database server.
//!
//! The storage engine lives in the `sonde-engine` crate; this crate is the
//! process around it: command line, configuration, HTTP API, push ingestion
//! (remote write, Influx line protocol) and self-instrumentation.

pub mod api;
pub mod check;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod fuzzing;
pub mod gocompat;
pub mod http_client;
pub mod influx;
pub mod ingest;
pub mod instrument;
pub mod metrics;
pub mod notify;
pub mod promql;
pub mod relabel;
pub mod remote;
pub mod rules;
pub mod scrape;
pub mod serve;
pub mod server;
pub mod state;
pub mod storage;
pub mod template;
pub mod web;
