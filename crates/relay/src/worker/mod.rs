//! Background work: the delivery processor and the gauges sampler.

pub mod activity;
mod batch;
pub mod circuit;
pub mod jobs;
pub mod processor;
pub mod rest;
pub mod resync;
pub mod retry;
pub mod sampler;
pub mod sweep;
mod wake;

pub use processor::{Processor, ProcessorConfig};
