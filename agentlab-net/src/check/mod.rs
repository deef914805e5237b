//! The probe matrix: specs of "from namespace X, connect to Y, expect reach/blocked", run in
//! parallel through `ip netns exec`, and the live-host check behind `agentlab net check`.

mod live;
mod matrix;

pub use live::{LiveCheck, LiveCheckOptions};
pub use matrix::{
    Expect, ProbeCommand, ProbeResult, ProbeSpec, probe_main, render_table, run_probes,
};
