//! Host metrics: sent in worker heartbeats, shown in the dashboard's gauges.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One sample of a host's load. Percentages are 0..=100 per core (the total is the
/// mean over cores, not the sum, so a 2-core host at full load reads 100).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct HostMetrics {
    pub cpu_percent: f32,
    #[serde(default)]
    pub cpu_per_core: Vec<f32>,
    pub memory_used_mb: u64,
    pub memory_total_mb: u64,
    #[serde(default)]
    pub gpus: Vec<GpuMetrics>,
    /// Why `gpus` is empty when it is: "no NVIDIA library", "no device", ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_note: Option<String>,
}

/// One GPU's state. Fields a driver cannot report are absent rather than zero, so a
/// gauge can say "n/a" instead of lying.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct GpuMetrics {
    pub index: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w: Option<f32>,
}

impl HostMetrics {
    /// Memory in use as a percentage, 0 when the total is unknown.
    pub fn memory_percent(&self) -> f32 {
        if self.memory_total_mb == 0 {
            0.0
        } else {
            (self.memory_used_mb as f32 / self.memory_total_mb as f32 * 100.0).clamp(0.0, 100.0)
        }
    }
}
