//! What a produce run leaves to look at besides its numbers: the latency
//! distribution as an HdrHistogram `.hgrm` file ([`hgrm`]), an SVG of
//! latency and throughput over time and of the distribution ([`plot`]),
//! and two JSON reports side by side ([`compare`]). Reads finished
//! reports only; touches no agent or client.

pub mod compare;
pub mod hgrm;
pub mod plot;
