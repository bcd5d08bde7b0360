//! Host metrics: sent in worker heartbeats, shown in the dashboard's gauges.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One sample of a host's load. Percentages are 0..=100 per core (the total is the
/// mean over cores, not the sum, so a 2-core host at full load reads 100).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct HostMetrics {
    #[serde(deserialize_with = "finite::one")]
    pub cpu_percent: f32,
    #[serde(default, deserialize_with = "finite::many")]
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "finite::maybe"
    )]
    pub power_w: Option<f32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "finite::maybe"
    )]
    pub power_limit_w: Option<f32>,
}

impl HostMetrics {
    /// The same sample with every non-finite reading (a NaN from a driver or a
    /// division by zero) as 0 or absent: peers refuse non-finite metrics.
    pub fn finite(mut self) -> Self {
        let fix = |v: f32| if v.is_finite() { v } else { 0.0 };
        self.cpu_percent = fix(self.cpu_percent);
        self.cpu_per_core.iter_mut().for_each(|v| *v = fix(*v));
        for gpu in &mut self.gpus {
            gpu.power_w = gpu.power_w.filter(|v| v.is_finite());
            gpu.power_limit_w = gpu.power_limit_w.filter(|v| v.is_finite());
        }
        self
    }

    /// Memory in use as a percentage, 0 when the total is unknown.
    pub fn memory_percent(&self) -> f32 {
        if self.memory_total_mb == 0 {
            0.0
        } else {
            (self.memory_used_mb as f32 / self.memory_total_mb as f32 * 100.0).clamp(0.0, 100.0)
        }
    }
}

/// Deserializers that refuse non-finite floats. JSON has no NaN or infinity, but a
/// number past `f32::MAX` (say `1e39`) narrows to infinity, which would then be
/// re-encoded as `null` and break every client reading the worker list. Found by the
/// `protocol_decoder` fuzz target.
mod finite {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    fn check<E: Error>(value: f32) -> Result<f32, E> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(E::custom(
                "a metric must be a finite number within f32 range",
            ))
        }
    }

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        check(f32::deserialize(d)?)
    }

    pub fn many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Vec::<f32>::deserialize(d)?.into_iter().map(check).collect()
    }

    pub fn maybe<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
        Option::<f32>::deserialize(d)?.map(check).transpose()
    }
}
