//! Host metrics for heartbeats and the gauges: CPU (total and per core, sampled
//! between two refreshes as sysinfo requires), memory, and every NVIDIA GPU through
//! NVML. Without the NVIDIA library or a device the GPU list is empty and
//! `gpu_note` says why.

use gridx_proto::metrics::{GpuMetrics, HostMetrics};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

pub struct Monitor {
    system: Option<System>,
    nvml: Result<Nvml, String>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    pub fn new() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .ok();
        let nvml = Nvml::init().map_err(|e| describe_nvml_error(&e));
        Self { system, nvml }
    }

    pub fn cpu_cores(&self) -> u32 {
        self.system
            .as_ref()
            .map_or(1, |s| s.cpus().len().max(1) as u32)
    }

    pub fn memory_total_mb(&self) -> u64 {
        self.system
            .as_ref()
            .map_or(0, |s| s.total_memory() / (1024 * 1024))
    }

    pub fn gpu_count(&self) -> u32 {
        self.nvml
            .as_ref()
            .ok()
            .and_then(|n| n.device_count().ok())
            .unwrap_or(0)
    }

    /// One sample. CPU usage is measured since the previous call, so call this on a
    /// steady interval (the first sample after start reads the time since `new`).
    pub fn sample(&mut self) -> HostMetrics {
        let mut metrics = HostMetrics::default();
        if let Some(system) = self.system.as_mut() {
            system.refresh_cpu_usage();
            system.refresh_memory();
            metrics.cpu_percent = system.global_cpu_usage().clamp(0.0, 100.0);
            metrics.cpu_per_core = system
                .cpus()
                .iter()
                .map(|c| c.usage().clamp(0.0, 100.0))
                .collect();
            metrics.memory_total_mb = system.total_memory() / (1024 * 1024);
            metrics.memory_used_mb = system.used_memory() / (1024 * 1024);
        }
        match &self.nvml {
            Err(why) => metrics.gpu_note = Some(why.clone()),
            Ok(nvml) => match nvml.device_count() {
                Err(e) => metrics.gpu_note = Some(describe_nvml_error(&e)),
                Ok(0) => metrics.gpu_note = Some("no NVIDIA GPU found".into()),
                Ok(count) => {
                    for index in 0..count {
                        match nvml.device_by_index(index) {
                            Ok(device) => {
                                let memory = device.memory_info().ok();
                                metrics.gpus.push(GpuMetrics {
                                    index,
                                    name: device.name().unwrap_or_else(|_| format!("GPU {index}")),
                                    utilization_percent: device
                                        .utilization_rates()
                                        .ok()
                                        .map(|u| u.gpu),
                                    memory_used_mb: memory.as_ref().map(|m| m.used / (1024 * 1024)),
                                    memory_total_mb: memory
                                        .as_ref()
                                        .map(|m| m.total / (1024 * 1024)),
                                    temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
                                    power_w: device.power_usage().ok().map(|mw| mw as f32 / 1000.0),
                                    power_limit_w: device
                                        .enforced_power_limit()
                                        .ok()
                                        .map(|mw| mw as f32 / 1000.0),
                                });
                            }
                            Err(e) => {
                                metrics.gpu_note =
                                    Some(format!("GPU {index}: {}", describe_nvml_error(&e)));
                            }
                        }
                    }
                }
            },
        }
        metrics.within_bounds()
    }
}

impl Monitor {
    /// Every GPU NVML finds, with what lending it needs: its device node's minor
    /// number and its UUID. The error says why there are none to be had.
    pub fn gpu_inventory(&self) -> Result<Vec<super::gpus::GpuInfo>, String> {
        let nvml = self.nvml.as_ref().map_err(Clone::clone)?;
        let count = nvml.device_count().map_err(|e| describe_nvml_error(&e))?;
        let mut found = Vec::new();
        for index in 0..count {
            let device = nvml
                .device_by_index(index)
                .map_err(|e| format!("GPU {index}: {}", describe_nvml_error(&e)))?;
            let memory = device
                .memory_info()
                .map_err(|e| format!("GPU {index}: {}", describe_nvml_error(&e)))?;
            let minor = device
                .minor_number()
                .map_err(|e| format!("GPU {index}: {}", describe_nvml_error(&e)))?;
            found.push(super::gpus::GpuInfo {
                index,
                name: device.name().unwrap_or_else(|_| format!("GPU {index}")),
                memory_mb: memory.total / (1024 * 1024),
                minor,
                uuid: device.uuid().ok(),
            });
        }
        Ok(found)
    }
}

fn describe_nvml_error(e: &nvml_wrapper::error::NvmlError) -> String {
    use nvml_wrapper::error::NvmlError;
    match e {
        NvmlError::LibloadingError(_) => {
            "no GPU: the NVIDIA management library (libnvidia-ml) is not installed".into()
        }
        NvmlError::DriverNotLoaded => "no GPU: the NVIDIA driver is not loaded".into(),
        NvmlError::NoPermission => "no GPU: no permission to query NVML".into(),
        other => format!("no GPU: {other}"),
    }
}
