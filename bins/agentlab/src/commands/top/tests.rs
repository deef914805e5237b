//! Tests of `agentlab top`.
