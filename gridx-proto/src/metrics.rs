//! Host metrics: sent in worker heartbeats, shown in the dashboard's gauges.

use crate::protocol::{
    MAX_CPU_CORES, MAX_GPU_NAME_BYTES, MAX_GPU_NOTE_BYTES, MAX_GPUS, MAX_MEMORY_MB, MAX_POWER_W,
    MAX_TEMPERATURE_C,
};
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
    /// The same sample made fit to send: every non-finite reading (a NaN from a
    /// driver, a division by zero) becomes 0 or absent, and every value is brought
    /// inside the protocol's bounds (`protocol::bounds`), which a peer enforces. A
    /// worker sends what a driver reported, clamped, rather than lose the heartbeat.
    pub fn within_bounds(mut self) -> Self {
        let percent = |v: f32| {
            if v.is_finite() {
                v.clamp(0.0, 100.0)
            } else {
                0.0
            }
        };
        let memory = |v: u64| v.min(MAX_MEMORY_MB);
        self.cpu_percent = percent(self.cpu_percent);
        self.cpu_per_core.truncate(MAX_CPU_CORES as usize);
        self.cpu_per_core.iter_mut().for_each(|v| *v = percent(*v));
        self.memory_used_mb = memory(self.memory_used_mb);
        self.memory_total_mb = memory(self.memory_total_mb);
        self.gpus.truncate(MAX_GPUS as usize);
        self.gpus.retain(|gpu| gpu.index < MAX_GPUS);
        for gpu in &mut self.gpus {
            cut(&mut gpu.name, MAX_GPU_NAME_BYTES);
            gpu.utilization_percent = gpu.utilization_percent.map(|v| v.min(100));
            gpu.memory_used_mb = gpu.memory_used_mb.map(memory);
            gpu.memory_total_mb = gpu.memory_total_mb.map(memory);
            // A sensor out of range is a sensor error: say "n/a", not a made-up value.
            gpu.temperature_c = gpu.temperature_c.filter(|v| *v <= MAX_TEMPERATURE_C);
            let watts = |v: &f32| v.is_finite() && (0.0..=MAX_POWER_W).contains(v);
            gpu.power_w = gpu.power_w.filter(watts);
            gpu.power_limit_w = gpu.power_limit_w.filter(watts);
        }
        if let Some(note) = &mut self.gpu_note {
            cut(note, MAX_GPU_NOTE_BYTES);
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

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
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

#[cfg(test)]
mod tests {
    use crate::metrics::{GpuMetrics, HostMetrics};
    use crate::protocol::{DEFAULT_MAX_FRAME_BYTES, WorkerMessage, decode_worker_message, encode};

    /// Whatever a driver reports, the sample a worker sends passes the peer's bounds.
    #[test]
    fn a_sample_within_bounds_always_decodes() {
        let wild = HostMetrics {
            cpu_percent: 100.0001,
            cpu_per_core: vec![-3.0, f32::NAN, 250.0, 50.0],
            memory_used_mb: u64::MAX,
            memory_total_mb: u64::MAX,
            gpus: (0..300)
                .map(|i| GpuMetrics {
                    index: if i == 1 { 9999 } else { i },
                    name: "é".repeat(300),
                    utilization_percent: Some(255),
                    memory_used_mb: Some(u64::MAX),
                    memory_total_mb: Some(1),
                    temperature_c: Some(u32::MAX),
                    power_w: Some(-1.0),
                    power_limit_w: Some(f32::INFINITY),
                })
                .collect(),
            gpu_note: Some("n".repeat(5000)),
        };
        let fit = wild.within_bounds();
        assert_eq!(fit.cpu_percent, 100.0);
        assert_eq!(fit.cpu_per_core, vec![0.0, 0.0, 100.0, 50.0]);
        assert_eq!(fit.gpus[0].temperature_c, None);
        assert_eq!(fit.gpus[0].power_w, None);
        assert_eq!(fit.gpus[0].utilization_percent, Some(100));
        assert!(fit.gpus.iter().all(|g| g.index != 9999));
        let frame = encode(&WorkerMessage::Heartbeat {
            metrics: fit,
            running: vec![],
            draining: false,
        })
        .unwrap();
        decode_worker_message(&frame, DEFAULT_MAX_FRAME_BYTES).expect("in bounds");
    }
}
