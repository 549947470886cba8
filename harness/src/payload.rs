//! A deterministic node_exporter-like scrape body, for benchmarks and tests.
//!
//! Values are written by a formatter the caller passes: sonde's callers
//! pass Go's `%g` (`sonde::gocompat::strconv::format_float(v, 'g', -1)`),
//! as Go's client library writes them, so that this crate needs nothing of
//! sonde and Go's formatting stays written once.

/// A scrape body like node_exporter 1.5 on an 8-CPU Linux host serves (~500
/// samples): HELP/TYPE for every family, counters, gauges, untyped, info-style
/// gauges, a summary (`go_gc_duration_seconds`) and a histogram, labels such as
/// `cpu`/`mode`/`device`/`mountpoint`, values formatted as Go's client library
/// formats them. Deterministic. For benchmarks and tests.
#[rustfmt::skip]
pub fn node_exporter_payload(format_value: &dyn Fn(f64) -> String) -> String {
    let mut g = PayloadGen { out: String::new(), seed: 0, format_value };
    g.family("go_gc_duration_seconds", "A summary of the pause duration of garbage collection cycles.", "summary");
    for (q, v) in [("0", 2.3814e-05), ("0.25", 4.0121e-05), ("0.5", 5.3457e-05), ("0.75", 7.3061e-05), ("1", 0.003218916)] {
        g.sample("go_gc_duration_seconds", &[("quantile", q)], v);
    }
    g.sample("go_gc_duration_seconds_sum", &[], 1.742216331);
    g.sample("go_gc_duration_seconds_count", &[], 24873.0);
    let h = "go_gc_heap_allocs_by_size_bytes_total";
    g.family(h, "Distribution of heap allocations by approximate size. Note that this does not include tiny objects as defined by /gc/heap/tiny/allocs:objects, only tiny blocks.", "histogram");
    let mut cum = 0.0;
    for (le, n) in [
        ("8.999999999999998", 1.2816611e+07), ("24.999999999999996", 8.4230113e+07),
        ("64.99999999999999", 4.3198126e+07), ("144.99999999999997", 1.7543271e+07),
        ("320.99999999999994", 5.132891e+06), ("704.9999999999999", 1.018327e+06),
        ("1536.9999999999998", 364412.0), ("3200.9999999999995", 98762.0),
        ("6528.999999999999", 53618.0), ("13568.999999999998", 29102.0),
        ("27264.999999999996", 10411.0), ("+Inf", 8911.0),
    ] {
        cum += n;
        g.sample(&format!("{h}_bucket"), &[("le", le)], cum);
    }
    g.sample(&format!("{h}_sum"), &[], 1.2631870464e+10);
    g.sample(&format!("{h}_count"), &[], cum);
    g.single("go_goroutines", "Number of goroutines that currently exist.", "gauge", 8.0);
    g.family("go_info", "Information about the Go environment.", "gauge");
    g.sample("go_info", &[("version", "go1.19.3")], 1.0);
    for (name, help, kind, v) in [
        ("alloc_bytes", "Number of bytes allocated and still in use.", "gauge", 3.364424e+06),
        ("alloc_bytes_total", "Total number of bytes allocated, even if freed.", "counter", 5.8716593752e+10),
        ("buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table.", "gauge", 1.890218e+06),
        ("frees_total", "Total number of frees.", "counter", 7.01291374e+08),
        ("gc_sys_bytes", "Number of bytes used for garbage collection system metadata.", "gauge", 9.233144e+06),
        ("heap_alloc_bytes", "Number of heap bytes allocated and still in use.", "gauge", 3.364424e+06),
        ("heap_idle_bytes", "Number of heap bytes waiting to be used.", "gauge", 6.070272e+06),
        ("heap_inuse_bytes", "Number of heap bytes that are in use.", "gauge", 5.627904e+06),
        ("heap_objects", "Number of allocated objects.", "gauge", 29341.0),
        ("heap_released_bytes", "Number of heap bytes released to OS.", "gauge", 4.128768e+06),
        ("heap_sys_bytes", "Number of heap bytes obtained from system.", "gauge", 1.1698176e+07),
        ("last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.", "gauge", 1.6993468617741597e+09),
        ("lookups_total", "Total number of pointer lookups.", "counter", 0.0),
        ("mallocs_total", "Total number of mallocs.", "counter", 7.01320715e+08),
        ("mcache_inuse_bytes", "Number of bytes in use by mcache structures.", "gauge", 9600.0),
        ("mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system.", "gauge", 15600.0),
        ("mspan_inuse_bytes", "Number of bytes in use by mspan structures.", "gauge", 129744.0),
        ("mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system.", "gauge", 228480.0),
        ("next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", "gauge", 6.548096e+06),
        ("other_sys_bytes", "Number of bytes used for other system allocations.", "gauge", 1.037918e+06),
        ("stack_inuse_bytes", "Number of bytes in use by the stack allocator.", "gauge", 917504.0),
        ("stack_sys_bytes", "Number of bytes obtained from system for stack allocator.", "gauge", 917504.0),
        ("sys_bytes", "Number of bytes obtained from system.", "gauge", 2.5021122e+07),
    ] {
        g.single(&format!("go_memstats_{name}"), help, kind, v);
    }
    g.single("go_threads", "Number of OS threads created.", "gauge", 9.0);
    g.family("node_arp_entries", "ARP entries by device", "gauge");
    g.sample("node_arp_entries", &[("device", "eth0")], 4.0);
    g.single("node_boot_time_seconds", "Node boot time, in unixtime.", "gauge", 1.698916403e+09);
    g.single("node_context_switches_total", "Total number of context switches.", "counter", 9.87112645e+09);
    let cpus: Vec<String> = (0..8).map(|c| c.to_string()).collect();
    g.family("node_cpu_guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.", "counter");
    for cpu in &cpus {
        for mode in ["nice", "user"] {
            g.sample("node_cpu_guest_seconds_total", &[("cpu", cpu), ("mode", mode)], 0.0);
        }
    }
    g.family("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", "counter");
    for cpu in &cpus {
        for mode in ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"] {
            let v = g.random(4.0e6);
            g.sample("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)], v);
        }
    }
    for (name, help) in [
        ("discard_time_seconds_total", "This is the total number of seconds spent by all discards."),
        ("discarded_sectors_total", "The total number of sectors discarded successfully."),
        ("discards_completed_total", "The total number of discards completed successfully."),
        ("discards_merged_total", "The total number of discards merged."),
        ("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests."),
        ("flush_requests_total", "The total number of flush requests completed successfully"),
        ("io_now", "The number of I/Os currently in progress."),
        ("io_time_seconds_total", "Total seconds spent doing I/Os."),
        ("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os."),
        ("read_bytes_total", "The total number of bytes read successfully."),
        ("read_time_seconds_total", "The total number of seconds spent by all reads."),
        ("reads_completed_total", "The total number of reads completed successfully."),
        ("reads_merged_total", "The total number of reads merged."),
        ("write_time_seconds_total", "This is the total number of seconds spent by all writes."),
        ("writes_completed_total", "The total number of writes completed successfully."),
        ("writes_merged_total", "The number of writes merged."),
        ("written_bytes_total", "The total number of bytes written successfully."),
    ] {
        let full = format!("node_disk_{name}");
        g.family(&full, help, if name == "io_now" { "gauge" } else { "counter" });
        for dev in ["dm-0", "nvme0n1", "sda"] {
            let v = g.random(1.0e9);
            g.sample(&full, &[("device", dev)], v);
        }
    }
    g.single("node_entropy_available_bits", "Bits of available entropy.", "gauge", 256.0);
    g.single("node_entropy_pool_size_bits", "Bits of entropy pool.", "gauge", 256.0);
    g.family("node_exporter_build_info", "A metric with a constant '1' value labeled by version, revision, branch, goversion from which node_exporter was built, and the goos and goarch for the build.", "gauge");
    g.sample("node_exporter_build_info", &[
        ("branch", "HEAD"), ("goarch", "amd64"), ("goos", "linux"), ("goversion", "go1.19.3"),
        ("revision", "1b48970ffcf5630534fb00bb0687d73c66d1c959"), ("tags", "netgo osusergo static_build"), ("version", "1.5.0"),
    ], 1.0);
    g.single("node_filefd_allocated", "File descriptor statistics: allocated.", "gauge", 3072.0);
    g.single("node_filefd_maximum", "File descriptor statistics: maximum.", "gauge", 9.223372036854776e+18);
    for (name, help) in [
        ("avail_bytes", "Filesystem space available to non-root users in bytes."),
        ("device_error", "Whether an error occurred while getting statistics for the given device."),
        ("files", "Filesystem total file nodes."),
        ("files_free", "Filesystem total free file nodes."),
        ("free_bytes", "Filesystem free space in bytes."),
        ("readonly", "Filesystem read-only status."),
        ("size_bytes", "Filesystem size in bytes."),
    ] {
        let full = format!("node_filesystem_{name}");
        g.family(&full, help, "gauge");
        for (dev, fs, mp) in [
            ("/dev/nvme0n1p1", "ext4", "/"), ("/dev/nvme0n1p15", "vfat", "/boot/efi"),
            ("/dev/sda1", "xfs", "/var/lib/docker"), ("tmpfs", "tmpfs", "/run"), ("tmpfs", "tmpfs", "/run/lock"),
        ] {
            let v = match name {
                "device_error" | "readonly" => 0.0,
                _ => g.random(5.0e7).floor() * 4096.0,
            };
            g.sample(&full, &[("device", dev), ("fstype", fs), ("mountpoint", mp)], v);
        }
    }
    g.single("node_forks_total", "Total number of forks.", "counter", 2.6571289e+07);
    g.single("node_intr_total", "Total number of interrupts serviced.", "counter", 4.917234853e+09);
    g.single("node_load1", "1m load average.", "gauge", 0.52);
    g.single("node_load15", "15m load average.", "gauge", 0.41);
    g.single("node_load5", "5m load average.", "gauge", 0.46);
    for name in [
        "Active", "Active_anon", "Active_file", "AnonHugePages", "AnonPages", "Bounce", "Buffers",
        "Cached", "CommitLimit", "Committed_AS", "DirectMap1G", "DirectMap2M", "DirectMap4k",
        "Dirty", "FileHugePages", "FilePmdMapped", "HardwareCorrupted", "HugePages_Free",
        "HugePages_Rsvd", "HugePages_Surp", "HugePages_Total", "Hugepagesize", "Hugetlb",
        "Inactive", "Inactive_anon", "Inactive_file", "KReclaimable", "KernelStack", "Mapped",
        "MemAvailable", "MemFree", "MemTotal", "Mlocked", "NFS_Unstable", "PageTables", "Percpu",
        "SReclaimable", "SUnreclaim", "ShmemHugePages", "ShmemPmdMapped", "Shmem", "Slab",
        "SwapCached", "SwapFree", "SwapTotal", "Unevictable", "VmallocChunk", "VmallocTotal",
        "VmallocUsed", "Writeback", "WritebackTmp",
    ] {
        let v = g.random(8.0e6).floor() * 1024.0;
        g.single(&format!("node_memory_{name}_bytes"), &format!("Memory information field {name}_bytes."), "gauge", v);
    }
    for name in [
        "Icmp6_InErrors", "Icmp6_InMsgs", "Icmp6_OutMsgs", "Icmp_InErrors", "Icmp_InMsgs",
        "Icmp_OutMsgs", "Ip6_InOctets", "Ip6_OutOctets", "IpExt_InOctets", "IpExt_OutOctets",
        "Ip_Forwarding", "TcpExt_ListenDrops", "TcpExt_ListenOverflows", "TcpExt_SyncookiesFailed",
        "TcpExt_SyncookiesRecv", "TcpExt_SyncookiesSent", "TcpExt_TCPSynRetrans",
        "Tcp_ActiveOpens", "Tcp_CurrEstab", "Tcp_InErrs", "Tcp_InSegs", "Tcp_OutRsts",
        "Tcp_OutSegs", "Tcp_PassiveOpens", "Tcp_RetransSegs", "Udp6_InDatagrams", "Udp6_InErrors",
        "Udp_InDatagrams", "Udp_InErrors", "Udp_NoPorts", "Udp_OutDatagrams",
    ] {
        let v = g.random(1.0e7).floor();
        g.single(&format!("node_netstat_{name}"), &format!("Statistic {}.", name.replace('_', "")), "untyped", v);
    }
    let devices = ["docker0", "eth0", "lo"];
    for name in [
        "receive_bytes_total", "receive_compressed_total", "receive_drop_total", "receive_errs_total",
        "receive_fifo_total", "receive_frame_total", "receive_multicast_total",
        "receive_packets_total", "transmit_bytes_total", "transmit_carrier_total",
        "transmit_colls_total", "transmit_compressed_total", "transmit_drop_total",
        "transmit_errs_total", "transmit_fifo_total", "transmit_packets_total",
    ] {
        let full = format!("node_network_{name}");
        g.family(&full, &format!("Network device statistic {}.", name.trim_end_matches("_total")), "counter");
        for dev in devices {
            let v = g.random(1.0e11).floor();
            g.sample(&full, &[("device", dev)], v);
        }
    }
    g.family("node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.", "gauge");
    for (dev, addr, state) in [
        ("docker0", "02:42:5c:1a:9e:01", "down"), ("eth0", "0a:1b:2c:3d:4e:5f", "up"), ("lo", "00:00:00:00:00:00", "unknown"),
    ] {
        g.sample("node_network_info", &[
            ("address", addr), ("broadcast", "ff:ff:ff:ff:ff:ff"), ("device", dev), ("duplex", ""), ("ifalias", ""), ("operstate", state),
        ], 1.0);
    }
    g.family("node_network_mtu_bytes", "Network device property: mtu_bytes", "gauge");
    for dev in devices {
        g.sample("node_network_mtu_bytes", &[("device", dev)], if dev == "lo" { 65536.0 } else { 1500.0 });
    }
    g.family("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", "gauge");
    for dev in devices {
        g.sample("node_network_up", &[("device", dev)], if dev == "eth0" { 1.0 } else { 0.0 });
    }
    g.single("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", "gauge", 0.0);
    g.single("node_procs_running", "Number of processes in runnable state.", "gauge", 3.0);
    for (name, help) in [
        ("running_seconds_total", "Number of seconds CPU spent running a process."),
        ("timeslices_total", "Number of timeslices executed by CPU."),
        ("waiting_seconds_total", "Number of seconds spent by processing waiting for this CPU."),
    ] {
        let full = format!("node_schedstat_{name}");
        g.family(&full, help, "counter");
        for cpu in &cpus {
            let v = g.random(1.0e6);
            g.sample(&full, &[("cpu", cpu)], v);
        }
    }
    let collectors = [
        "arp", "bcache", "btrfs", "conntrack", "cpu", "cpufreq", "diskstats", "dmi", "edac",
        "entropy", "filefd", "filesystem", "hwmon", "loadavg", "mdadm", "meminfo", "netclass",
        "netdev", "netstat", "nvme", "os", "pressure", "rapl", "schedstat", "sockstat", "softnet",
        "stat", "textfile", "time", "timex", "uname", "vmstat",
    ];
    g.family("node_scrape_collector_duration_seconds", "node_exporter: Duration of a collector scrape.", "gauge");
    for c in collectors {
        let v = g.random(0.01);
        g.sample("node_scrape_collector_duration_seconds", &[("collector", c)], v);
    }
    g.family("node_scrape_collector_success", "node_exporter: Whether a collector succeeded.", "gauge");
    for c in collectors {
        let v = if matches!(c, "nvme" | "rapl") { 0.0 } else { 1.0 };
        g.sample("node_scrape_collector_success", &[("collector", c)], v);
    }
    for name in [
        "FRAG6_inuse", "FRAG_inuse", "RAW6_inuse", "RAW_inuse", "TCP6_inuse", "TCP_alloc",
        "TCP_inuse", "TCP_mem", "TCP_mem_bytes", "TCP_orphan", "TCP_tw", "UDP6_inuse",
        "UDPLITE_inuse", "UDP_inuse", "UDP_mem", "UDP_mem_bytes", "sockets_used",
    ] {
        let v = g.random(500.0).floor();
        g.single(&format!("node_sockstat_{name}"), &format!("Number of {name} sockets in state inuse."), "gauge", v);
    }
    g.single("node_textfile_scrape_error", "1 if there was an error opening or reading a file, 0 otherwise", "gauge", 0.0);
    g.single("node_time_seconds", "System time in seconds since epoch (1970).", "gauge", 1.6993468722046258e+09);
    g.single("node_timex_estimated_error_seconds", "Estimated error in seconds.", "gauge", 0.0);
    g.single("node_timex_frequency_adjustment_ratio", "Local clock frequency adjustment.", "gauge", 0.9999915212249756);
    g.single("node_timex_maxerror_seconds", "Maximum error in seconds.", "gauge", 0.5405);
    g.single("node_timex_offset_seconds", "Time offset in between local system and reference clock.", "gauge", -2.85e-07);
    g.single("node_timex_sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).", "gauge", 1.0);
    g.family("node_uname_info", "Labeled system information as provided by the uname system call.", "gauge");
    g.sample("node_uname_info", &[
        ("domainname", "(none)"), ("machine", "x86_64"), ("nodename", "web-01"), ("release", "5.15.0-88-generic"),
        ("sysname", "Linux"), ("version", "#98-Ubuntu SMP Mon Oct 2 15:18:56 UTC 2023"),
    ], 1.0);
    for name in ["oom_kill", "pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout"] {
        let v = g.random(1.0e9).floor();
        g.single(&format!("node_vmstat_{name}"), &format!("/proc/vmstat information field {name}."), "untyped", v);
    }
    g.single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", 4721.37);
    g.single("process_max_fds", "Maximum number of open file descriptors.", "gauge", 1.048576e+06);
    g.single("process_open_fds", "Number of open file descriptors.", "gauge", 10.0);
    g.single("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", 2.4240128e+07);
    g.single("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", 1.69891643522e+09);
    g.single("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", 7.34461696e+08);
    g.single("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", "gauge", 1.8446744073709552e+19);
    g.family("promhttp_metric_handler_errors_total", "Total number of internal errors encountered by the promhttp metric handler.", "counter");
    g.sample("promhttp_metric_handler_errors_total", &[("cause", "encoding")], 0.0);
    g.sample("promhttp_metric_handler_errors_total", &[("cause", "gathering")], 0.0);
    g.single("promhttp_metric_handler_requests_in_flight", "Current number of scrapes being served.", "gauge", 1.0);
    g.family("promhttp_metric_handler_requests_total", "Total number of scrapes by HTTP status code.", "counter");
    for (code, v) in [("200", 235_112.0), ("500", 0.0), ("503", 0.0)] {
        g.sample("promhttp_metric_handler_requests_total", &[("code", code)], v);
    }
    g.out
}

/// Builds [`node_exporter_payload`] line by line.
struct PayloadGen<'f> {
    out: String,
    seed: u64,
    format_value: &'f dyn Fn(f64) -> String,
}

impl PayloadGen<'_> {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        use std::fmt::Write as _;
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            self.out.push('{');
            self.out.push_str(&pairs.join(","));
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&(self.format_value)(v));
        self.out.push('\n');
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, help: &str, kind: &str, v: f64) {
        self.family(name, help, kind);
        self.sample(name, &[], v);
    }

    /// A pseudo-random value in `[0, scale)` with two decimals.
    fn random(&mut self, scale: f64) -> f64 {
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        (r * scale * 100.0).round() / 100.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_shaped_like_node_exporter() {
        let f = |v: f64| format!("{v}");
        let a = super::node_exporter_payload(&f);
        assert_eq!(a, super::node_exporter_payload(&f));
        let samples = a.lines().filter(|l| !l.starts_with('#')).count();
        assert!((400..800).contains(&samples), "{samples} samples");
        assert!(a.contains("# TYPE go_gc_duration_seconds summary\n"));
    }
}
