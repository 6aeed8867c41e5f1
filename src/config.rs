//! Command line and config files of the `kelp` binary.
//!
//! [`parse_cli`] parses argv with clap. For a subcommand that has a `--config` flag
//! (`server`), config files are merged in the way k3s does it:
//!
//! 1. the file named by `--config` / `-c` / `$KELP_CONFIG_FILE` (default
//!    `/etc/kelp/config.yaml`; a missing default file is fine, a missing explicitly given
//!    file is an error),
//! 2. then every `*.yaml` file in `<config>.d/` (e.g. `/etc/kelp/config.yaml.d/`) in name
//!    order.
//!
//! Each file is a YAML map whose keys are long flag names without the dashes (`tls-san`,
//! `data-dir`, `disable-agent`; `v` for `-v`). Later files win; `name+:` appends to the
//! list accumulated so far instead of replacing it. Scalars become the flag's value, lists
//! a repeated flag, `true` sets a boolean flag, and an integer sets the `-v` count. Flags
//! given on the command line (or through an environment variable) override the files; for
//! list flags the command-line list replaces the files' list.
//!
//! Every file value is validated with the flag's own parser, so errors are one line naming
//! the file and the key, e.g. `/etc/kelp/config.yaml: unknown key "foo"`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ipnet::IpNet;
use serde_yaml_ng::Value;

/// The Kubernetes version kelp implements.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// `kelp --version` output (after the program name).
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), " (kubernetes v1.33.0)");

/// Default config file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/kelp/config.yaml";

/// Errors of command-line and config-file handling. `Display` is one line naming the file
/// and key (or the bad flag), except for [`ConfigError::Clap`] carrying `--help` /
/// `--version` output, whose `Display` is that output.
///
/// `main` should call [`ConfigError::exit`]: it prints help / version to stdout and exits
/// 0, prints clap's usage errors with clap's formatting and exits 2, and prints every other
/// error as `error: <message>` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A command-line error from clap, or a `--help` / `--version` request.
    #[error("{}", clap_one_line(.0))]
    Clap(clap::Error),
    #[error("{}: config file not found", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid yaml: {msg}", path.display())]
    Yaml { path: PathBuf, msg: String },
    #[error("{}: top level must be a map of flag names to values", path.display())]
    NotAMap { path: PathBuf },
    #[error("{}: unknown key \"{key}\"", path.display())]
    UnknownKey { path: PathBuf, key: String },
    #[error("{}: key \"{key}\": {msg}", path.display())]
    BadKey { path: PathBuf, key: String, msg: String },
    #[error("{}: key \"{key}\": invalid value \"{value}\": {reason}", path.display())]
    InvalidValue { path: PathBuf, key: String, value: String, reason: String },
    /// A combination of flags (from the command line or files) that does not work.
    #[error("--{flag}: {msg}")]
    Invalid { flag: String, msg: String },
}

fn clap_one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            text.trim_end().to_string()
        }
        _ => {
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let line = line.strip_prefix("error: ").unwrap_or(line);
            match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(valid)) if !line.contains("expected one of") => {
                    format!("{line}: expected one of {}", valid.join(", "))
                }
                _ => line.to_string(),
            }
        }
    }
}

impl ConfigError {
    /// True for `--help` / `--version` (and help shown for a missing subcommand).
    pub fn is_help_or_version(&self) -> bool {
        matches!(self, ConfigError::Clap(e) if matches!(
            e.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
        ))
    }

    /// The process exit code for this error: 0 for help / version, 2 for clap usage
    /// errors, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Clap(e) => e.exit_code(),
            _ => 1,
        }
    }

    /// Prints the error (or help / version) and exits the process with [`Self::exit_code`].
    pub fn exit(&self) -> ! {
        match self {
            ConfigError::Clap(e) => e.exit(),
            other => {
                eprintln!("error: {other}");
                std::process::exit(1)
            }
        }
    }
}

/// The `kelp` command line.
#[derive(Parser, Debug)]
#[command(
    name = "kelp",
    version = VERSION,
    about = "Kubernetes for edge devices in one binary",
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `kelp` subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the control plane: API server, store and controllers
    Server(ServerArgs),
    /// Run a node only, joined to a server through a kubeconfig
    Agent(AgentArgs),
    /// Manage the images of this node's store (works while the node runs)
    Images(ImagesArgs),
    /// Run simulated nodes (like kubemark) for tests and scale checks
    HollowNodes(HollowNodesArgs),
    /// Internal: the per-container shim (single-threaded; started by the agent)
    #[command(hide = true)]
    Shim(ShimArgs),
}

/// Flags shared by every command that runs a node (`server` without `--disable-agent`, `agent`).
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// Registry mirrors and credentials (k3s's registries.yaml format)
    #[arg(long, value_name = "FILE", default_value = "/etc/kelp/registries.yaml")]
    pub private_registry: PathBuf,

    /// Labels to add when registering the node (key=value; repeatable or comma-separated)
    #[arg(long = "node-label", value_name = "KEY=VALUE", value_delimiter = ',')]
    pub node_labels: Vec<String>,

    /// Taints to add when registering the node (key=value:Effect; repeatable or comma-separated)
    #[arg(long = "node-taint", value_name = "KEY=VALUE:EFFECT", value_delimiter = ',')]
    pub node_taints: Vec<String>,

    /// Maximum number of pods on this node
    #[arg(long, value_name = "N", default_value_t = 110)]
    pub max_pods: u32,

    /// Port of the agent's HTTPS endpoint (logs, exec, port-forward, stats) for the API server;
    /// 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = 10250)]
    pub kubelet_port: u16,

    /// Runtime state (shims, sandbox namespaces); must be on tmpfs
    #[arg(long, hide = true, value_name = "DIR", default_value = "/run/kelp")]
    pub run_dir: PathBuf,

    /// Parent cgroup of every pod (`<root>/pod<uid>/<container>`)
    #[arg(long, hide = true, value_name = "NAME", default_value = "kelp")]
    pub cgroup_root: String,

    /// Name of the node's pod bridge
    #[arg(long, hide = true, value_name = "NAME", default_value = "kelp0")]
    pub bridge_name: String,

    /// Where container logs are written (`<dir>/<ns>_<pod>_<uid>/<container>/<n>.log`)
    #[arg(long, hide = true, value_name = "DIR", default_value = "/var/log/pods")]
    pub pod_log_dir: PathBuf,

    /// Size at which a container log file is rotated (a quantity, kubelet's containerLogMaxSize)
    #[arg(long, hide = true, value_name = "QUANTITY", default_value = "10Mi", value_parser = parse_log_max_size)]
    pub container_log_max_size: u64,

    /// Log files kept per container, the current one included (kubelet's containerLogMaxFiles)
    #[arg(long, hide = true, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..))]
    pub container_log_max_files: u32,
}

/// `--container-log-max-size`: a Kubernetes quantity of bytes, at least 1.
fn parse_log_max_size(s: &str) -> Result<u64, String> {
    let q = crate::api::validation::parse_quantity(s).ok_or_else(|| format!("invalid quantity {s:?}"))?;
    let bytes = q.nanos / 1_000_000_000;
    if q.nanos % 1_000_000_000 != 0 || bytes < 1 || bytes > u64::MAX as i128 {
        return Err(format!("{s:?} is not a positive whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Flags of `kelp agent`.
#[derive(Args, Clone, Debug)]
pub struct AgentArgs {
    /// Kubeconfig to reach the API server with
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: PathBuf,

    /// Folder to hold state
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kelp")]
    pub data_dir: PathBuf,

    /// Node name (default: the hostname)
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// IP address(es) to advertise for the node (repeatable or comma-separated)
    #[arg(long = "node-ip", value_name = "IP", value_delimiter = ',')]
    pub node_ips: Vec<IpAddr>,

    /// Cluster DNS service IP written into pods' resolv.conf
    #[arg(long, value_name = "IP", default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,

    /// Cluster domain
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,

    #[command(flatten)]
    pub node: NodeArgs,

    /// Log level
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// More verbose logging; each -v is one level above --log-level
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,
}

/// Flags of `kelp hollow-nodes`.
#[derive(Args, Clone, Debug)]
pub struct HollowNodesArgs {
    /// Kubeconfig to reach the API server with
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: PathBuf,

    /// How many nodes to simulate
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: usize,

    /// Node names are <prefix><index>
    #[arg(long, value_name = "PREFIX", default_value = "hollow-node-")]
    pub name_prefix: String,

    /// Seconds between lease renewals
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub lease_seconds: u64,

    /// CPU capacity of each node
    #[arg(long, value_name = "QUANTITY", default_value = "4")]
    pub cpu: String,

    /// Memory capacity of each node
    #[arg(long, value_name = "QUANTITY", default_value = "16Gi")]
    pub memory: String,

    /// Maximum number of pods per node
    #[arg(long, value_name = "N", default_value_t = 110)]
    pub max_pods: u32,

    /// Port of the agent's HTTPS endpoint (logs, exec, port-forward, stats) for the API server;
    /// 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = 10250)]
    pub kubelet_port: u16,

    /// Log level
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// More verbose logging; each -v is one level above --log-level
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,
}

/// Flags of `kelp images`.
#[derive(Args, Clone, Debug)]
pub struct ImagesArgs {
    /// Folder holding the node's state
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kelp", global = true)]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: ImagesCommand,
}

/// `kelp images` subcommands.
#[derive(Subcommand, Clone, Debug)]
pub enum ImagesCommand {
    /// Import `docker save` or OCI-layout tarballs (plain, .gz or .zst)
    Import {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// List the images in the store
    #[command(alias = "list")]
    Ls,
    /// Remove images by name or ID
    Rm {
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
    },
}

/// Arguments of the internal `kelp shim` command; parsed by the runtime.
#[derive(Args, Clone, Debug)]
pub struct ShimArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Log levels for `--log-level`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The lower-case name (what [`crate::logging::init`] takes).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive port range such as `30000-32767`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    /// Number of ports in the range.
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Always false: a valid range has at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('-').ok_or_else(|| "expected a range like 30000-32767".to_string())?;
        let parse = |p: &str| p.trim().parse::<u16>().map_err(|e| format!("port {:?}: {e}", p.trim()));
        let (start, end) = (parse(a)?, parse(b)?);
        if start == 0 {
            return Err("port 0 is not allowed".into());
        }
        if start > end {
            return Err(format!("start {start} is greater than end {end}"));
        }
        Ok(PortRange { start, end })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Parses an octal file mode such as `0644`, `644` or `0o644` (at most `0777`).
pub fn parse_file_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err("expected an octal file mode such as 0644".into());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| "expected an octal file mode such as 0644")?;
    if mode > 0o777 {
        return Err("file mode must be at most 0777".into());
    }
    Ok(mode)
}

/// Flags of `kelp server` (k3s names and defaults).
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Folder to hold state
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kelp")]
    pub data_dir: PathBuf,

    /// IP address the API server listens on
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// HTTPS listen port of the API server
    #[arg(long, value_name = "PORT", default_value_t = 6443)]
    pub https_listen_port: u16,

    /// IP address the API server advertises to cluster members (default: node IP)
    #[arg(long, value_name = "IP")]
    pub advertise_address: Option<IpAddr>,

    /// IP address(es) to advertise for the node (repeatable or comma-separated)
    #[arg(long = "node-ip", value_name = "IP", value_delimiter = ',')]
    pub node_ips: Vec<IpAddr>,

    /// Write the admin kubeconfig to this file
    #[arg(long, short = 'o', value_name = "FILE", default_value = "/etc/kelp/kelp.yaml")]
    pub write_kubeconfig: PathBuf,

    /// Write the kubeconfig with this octal mode
    #[arg(long, value_name = "MODE", default_value = "0600", value_parser = parse_file_mode)]
    pub write_kubeconfig_mode: u32,

    /// Extra host name or IP for the serving certificate (repeatable or comma-separated)
    #[arg(long = "tls-san", value_name = "NAME", value_delimiter = ',')]
    pub tls_sans: Vec<String>,

    /// IPv4/IPv6 network CIDR for pod IPs
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: IpNet,

    /// IPv4/IPv6 network CIDR for service IPs
    #[arg(long, value_name = "CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: IpNet,

    /// Cluster DNS service IP (default: the 10th address of --service-cidr)
    #[arg(long, value_name = "IP", default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,

    /// Cluster domain
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,

    /// Port range reserved for NodePort services
    #[arg(long, value_name = "RANGE", default_value = "30000-32767")]
    pub service_node_port_range: PortRange,

    /// Do not run a local agent
    #[arg(long)]
    pub disable_agent: bool,

    /// Do not run the scheduler
    #[arg(long)]
    pub disable_scheduler: bool,

    /// Do not run the controllers
    #[arg(long)]
    pub disable_controller_manager: bool,

    /// Built-in components not to run, as k3s names them: `metrics-server` (the metrics.k8s.io
    /// API, to use another metrics provider)
    #[arg(long = "disable", value_name = "NAME", value_delimiter = ',', value_parser = ["metrics-server"])]
    pub disable: Vec<String>,

    /// Node name (default: the hostname)
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    #[command(flatten)]
    pub node: NodeArgs,

    /// Config file
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "KELP_CONFIG_FILE",
        default_value = DEFAULT_CONFIG_FILE
    )]
    pub config: PathBuf,

    /// Log level
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// More verbose logging; each -v is one level above --log-level
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,

    /// Seconds between store compactions
    #[arg(long, hide = true, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub store_compaction_interval: u64,

    /// Seconds of history the store keeps
    #[arg(long, hide = true, value_name = "SECONDS", default_value_t = 300)]
    pub store_compaction_retention: u64,

    /// Events buffered per watcher before a watcher that does not keep up is cut off
    #[arg(long, hide = true, value_name = "EVENTS", default_value_t = 16384,
          value_parser = clap::value_parser!(u64).range(16..))]
    pub watch_buffer_events: u64,
}

fn ip_add(ip: IpAddr, n: u128) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => {
            u32::try_from(u128::from(u32::from(v4)).checked_add(n)?).ok().map(|x| IpAddr::V4(Ipv4Addr::from(x)))
        }
        IpAddr::V6(v6) => u128::from(v6).checked_add(n).map(|x| IpAddr::V6(Ipv6Addr::from(x))),
    }
}

/// The `n`-th address of a network (0 = the network address), if inside it.
fn nth_address(net: &IpNet, n: u128) -> Option<IpAddr> {
    ip_add(net.network(), n).filter(|ip| net.contains(ip))
}

impl ServerArgs {
    /// The first service IP (`kubernetes.default.svc`), e.g. 10.43.0.1.
    pub fn service_ip(&self) -> Option<IpAddr> {
        nth_address(&self.service_cidr, 1)
    }

    /// The store compaction interval.
    pub fn compaction_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.store_compaction_interval)
    }

    /// How much history the store keeps.
    pub fn compaction_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.store_compaction_retention)
    }

    /// Derives defaults that depend on other flags and checks flag combinations.
    fn finish(&mut self, m: &ArgMatches) -> Result<(), ConfigError> {
        let invalid = |flag: &str, msg: String| ConfigError::Invalid { flag: flag.to_string(), msg };
        if m.value_source("cluster_dns") == Some(ValueSource::DefaultValue) {
            self.cluster_dns = nth_address(&self.service_cidr, 10).ok_or_else(|| {
                invalid("service-cidr", format!("{} is too small to hold the cluster dns address", self.service_cidr))
            })?;
        }
        if self.service_ip().is_none() || self.service_cidr.prefix_len() == self.service_cidr.max_prefix_len() {
            return Err(invalid("service-cidr", format!("{} has no usable address", self.service_cidr)));
        }
        if !self.service_cidr.contains(&self.cluster_dns) || self.cluster_dns == self.service_cidr.network() {
            return Err(invalid(
                "cluster-dns",
                format!("{} is not a host address inside --service-cidr {}", self.cluster_dns, self.service_cidr),
            ));
        }
        if self.cluster_cidr.contains(&self.service_cidr.network())
            || self.service_cidr.contains(&self.cluster_cidr.network())
        {
            return Err(invalid(
                "service-cidr",
                format!("{} overlaps --cluster-cidr {}", self.service_cidr, self.cluster_cidr),
            ));
        }
        if self.cluster_domain.trim().is_empty() {
            return Err(invalid("cluster-domain", "must not be empty".into()));
        }
        if matches!(&self.node_name, Some(n) if n.trim().is_empty()) {
            return Err(invalid("node-name", "must not be empty".into()));
        }
        Ok(())
    }
}

/// Parse argv (including argv[0]); for `server`, merge config files first (see the module
/// docs). On error returns a [`ConfigError`] whose `Display` is one line naming the file and
/// key (or the bad flag); `--help` / `--version` come back as [`ConfigError::Clap`], for
/// which `main` should call [`ConfigError::exit`].
pub fn parse_cli<I, T>(args: I) -> Result<Cli, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = Cli::command();
    let first = cmd.clone().try_get_matches_from(argv.iter().cloned()).map_err(ConfigError::Clap)?;

    let mut matches = first;
    if let Some((name, sub_m)) = matches.subcommand() {
        if let Some(sub_cmd) = cmd.find_subcommand(name) {
            let extra = config_file_args(sub_cmd, sub_m)?;
            if !extra.is_empty() {
                // Insert before a `--` (nothing after it can be a flag), else at the end;
                // either way the synthetic flags land in the subcommand's arguments.
                let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
                let mut second = argv[..at].to_vec();
                second.extend(extra);
                second.extend_from_slice(&argv[at..]);
                matches = cmd.clone().try_get_matches_from(second).map_err(ConfigError::Clap)?;
            }
        }
    }

    let mut cli = Cli::from_arg_matches(&matches).map_err(ConfigError::Clap)?;
    if let (Command::Server(args), Some((_, sub_m))) = (&mut cli.command, matches.subcommand()) {
        args.finish(sub_m)?
    }
    Ok(cli)
}

/// One flag's values accumulated across config files.
#[derive(Debug, Clone)]
struct Merged {
    /// Each value with the file it came from.
    items: Vec<(Value, PathBuf)>,
    /// Whether the value is a list (a YAML sequence or an appended `key+`).
    list: bool,
    /// The last file that set or appended to the key.
    file: PathBuf,
}

/// Config-file keys of a command: long flag names (or the short letter for short-only
/// flags), without `help`, `version` and `config`.
fn config_keys(cmd: &clap::Command) -> BTreeMap<String, &Arg> {
    cmd.get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version" | "config"))
        .filter_map(|a| {
            let key = match (a.get_long(), a.get_short()) {
                (Some(long), _) => long.to_string(),
                (None, Some(short)) => short.to_string(),
                (None, None) => return None,
            };
            Some((key, a))
        })
        .collect()
}

/// The config file followed by the drop-ins that exist, in merge order.
fn config_files(path: &Path, explicit: bool) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    match std::fs::metadata(path) {
        Ok(_) => files.push(path.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if explicit {
                return Err(ConfigError::NotFound { path: path.to_path_buf() });
            }
        }
        Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
    }
    let mut dropin_dir = path.as_os_str().to_owned();
    dropin_dir.push(".d");
    let dropin_dir = PathBuf::from(dropin_dir);
    let entries = match std::fs::read_dir(&dropin_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(source) => return Err(ConfigError::Read { path: dropin_dir, source }),
    };
    let mut dropins = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read { path: dropin_dir.clone(), source })?;
        let p = entry.path();
        let is_yaml = p.extension().is_some_and(|e| e == "yaml");
        // Follow symlinks; skip directories and anything else that is not a file.
        if is_yaml && std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
            dropins.push(p);
        }
    }
    dropins.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files.extend(dropins);
    Ok(files)
}

/// Reads and merges the config files; validates keys against `keys`.
fn merge_files(files: &[PathBuf], keys: &BTreeMap<String, &Arg>) -> Result<BTreeMap<String, Merged>, ConfigError> {
    let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read { path: file.clone(), source })?;
        let doc: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| ConfigError::Yaml { path: file.clone(), msg: e.to_string().replace('\n', " ") })?;
        let map = match doc {
            Value::Null => continue,
            Value::Mapping(map) => map,
            _ => return Err(ConfigError::NotAMap { path: file.clone() }),
        };
        for (k, v) in map {
            let raw_key = match &k {
                Value::String(s) => s.clone(),
                other => {
                    return Err(ConfigError::UnknownKey {
                        path: file.clone(),
                        key: scalar_text(other).unwrap_or_else(|| "<non-scalar>".into()),
                    })
                }
            };
            let (name, append) = match raw_key.strip_suffix('+') {
                Some(name) => (name, true),
                None => (raw_key.as_str(), false),
            };
            let arg =
                keys.get(name).ok_or_else(|| ConfigError::UnknownKey { path: file.clone(), key: raw_key.clone() })?;
            if append && !matches!(arg.get_action(), ArgAction::Append) {
                return Err(ConfigError::BadKey {
                    path: file.clone(),
                    key: raw_key.clone(),
                    msg: format!("\"{name}\" is not a list flag, so \"+\" cannot append to it"),
                });
            }
            let (items, list) = match v {
                Value::Sequence(seq) => (seq.into_iter().map(|x| (x, file.clone())).collect(), true),
                other => (vec![(other, file.clone())], false),
            };
            match merged.get_mut(name) {
                Some(m) if append => {
                    m.items.extend(items);
                    m.list = true;
                    m.file = file.clone();
                }
                _ => {
                    merged.insert(name.to_string(), Merged { items, list: list || append, file: file.clone() });
                }
            }
        }
    }
    Ok(merged)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Why a clap value parser rejected a value, in a few words.
fn clap_reason(e: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(e) {
        return source.to_string();
    }
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        return format!("expected one of {}", valid.join(", "));
    }
    let line = clap_one_line(e);
    line.rsplit_once("': ").map(|(_, reason)| reason.to_string()).unwrap_or(line)
}

/// Turns one merged key into command-line arguments, validating every value.
fn key_to_args(sub_cmd: &clap::Command, key: &str, arg: &Arg, m: &Merged) -> Result<Vec<OsString>, ConfigError> {
    let bad = |path: &Path, msg: &str| ConfigError::BadKey {
        path: path.to_path_buf(),
        key: key.to_string(),
        msg: msg.to_string(),
    };
    let invalid = |path: &Path, value: &str, reason: String| ConfigError::InvalidValue {
        path: path.to_path_buf(),
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    let action = arg.get_action();
    let multi = matches!(action, ArgAction::Append);
    if m.list && !multi {
        return Err(bad(&m.file, "expected a single value, got a list"));
    }
    let flag = match (arg.get_long(), arg.get_short()) {
        (Some(long), _) => format!("--{long}"),
        (_, Some(short)) => format!("-{short}"),
        _ => return Err(ConfigError::UnknownKey { path: m.file.clone(), key: key.to_string() }),
    };
    let mut out = Vec::new();
    for (value, file) in &m.items {
        let text = match value {
            Value::Null => return Err(bad(file, "missing value")),
            Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
                return Err(bad(file, "expected a scalar value"))
            }
            other => scalar_text(other).unwrap_or_default(),
        };
        match action {
            ArgAction::SetTrue => {
                let on = match value {
                    Value::Bool(b) => *b,
                    Value::String(s) if s == "true" => true,
                    Value::String(s) if s == "false" => false,
                    _ => return Err(invalid(file, &text, "expected true or false".into())),
                };
                if on {
                    out.push(OsString::from(&flag));
                }
            }
            ArgAction::Count => {
                let n: u8 = text.parse().map_err(|_| invalid(file, &text, "expected a count from 0 to 255".into()))?;
                out.extend((0..n).map(|_| OsString::from(&flag)));
            }
            ArgAction::Set | ArgAction::Append => {
                let token = OsString::from(format!("{flag}={text}"));
                // Validate with the flag's own parser by parsing just this flag.
                if let Err(e) = sub_cmd.clone().no_binary_name(true).try_get_matches_from([token.as_os_str()]) {
                    if matches!(
                        e.kind(),
                        ErrorKind::InvalidValue
                            | ErrorKind::ValueValidation
                            | ErrorKind::InvalidUtf8
                            | ErrorKind::NoEquals
                    ) {
                        return Err(invalid(file, &text, clap_reason(&e)));
                    }
                }
                out.push(token);
            }
            _ => return Err(ConfigError::UnknownKey { path: m.file.clone(), key: key.to_string() }),
        }
    }
    Ok(out)
}

/// Synthetic arguments for the config-file values of a subcommand that has a `config` flag
/// (none if it has not). Values of flags given on the command line are validated but left
/// out, so the command line wins.
fn config_file_args(sub_cmd: &clap::Command, sub_m: &ArgMatches) -> Result<Vec<OsString>, ConfigError> {
    if !sub_cmd.get_arguments().any(|a| a.get_id() == "config") {
        return Ok(Vec::new());
    }
    let path = match sub_m.try_get_one::<PathBuf>("config") {
        Ok(Some(p)) => p.clone(),
        _ => return Ok(Vec::new()),
    };
    let explicit = matches!(sub_m.value_source("config"), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
    let keys = config_keys(sub_cmd);
    let files = config_files(&path, explicit)?;
    let merged = merge_files(&files, &keys)?;
    let mut out = Vec::new();
    for (key, m) in &merged {
        let Some(arg) = keys.get(key.as_str()) else {
            continue;
        };
        let args = key_to_args(sub_cmd, key, arg, m)?;
        let given = matches!(
            sub_m.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !given {
            out.extend(args);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::fs;

    struct Env {
        _tmp: tempfile::TempDir,
        config: PathBuf,
    }

    impl Env {
        fn new() -> Env {
            let tmp = tempfile::tempdir().expect("tempdir");
            let config = tmp.path().join("config.yaml");
            Env { _tmp: tmp, config }
        }

        fn write(&self, text: &str) -> &Self {
            fs::write(&self.config, text).expect("write config");
            self
        }

        fn dropin(&self, name: &str, text: &str) -> PathBuf {
            let mut dir = self.config.as_os_str().to_owned();
            dir.push(".d");
            let dir = PathBuf::from(dir);
            fs::create_dir_all(&dir).expect("mkdir");
            let p = dir.join(name);
            fs::write(&p, text).expect("write dropin");
            p
        }

        fn parse(&self, extra: &[&str]) -> Result<ServerArgs, ConfigError> {
            let mut argv = vec!["kelp", "server", "--config"];
            let cfg = self.config.to_str().expect("utf8 path");
            argv.push(cfg);
            argv.extend_from_slice(extra);
            parse_cli(argv).map(|cli| match cli.command {
                Command::Server(a) => a,
                other => panic!("parsed {other:?}"),
            })
        }
    }

    #[test]
    fn defaults() {
        let env = Env::new();
        env.write("");
        let a = env.parse(&[]).expect("parse");
        assert_eq!(a.data_dir, PathBuf::from("/var/lib/kelp"));
        assert_eq!(a.bind_address, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(a.https_listen_port, 6443);
        assert_eq!(a.advertise_address, None);
        assert!(a.node_ips.is_empty());
        assert_eq!(a.write_kubeconfig, PathBuf::from("/etc/kelp/kelp.yaml"));
        assert_eq!(a.write_kubeconfig_mode, 0o600);
        assert!(a.tls_sans.is_empty());
        assert_eq!(a.cluster_cidr.to_string(), "10.42.0.0/16");
        assert_eq!(a.service_cidr.to_string(), "10.43.0.0/16");
        assert_eq!(a.cluster_dns, IpAddr::from([10, 43, 0, 10]));
        assert_eq!(a.cluster_domain, "cluster.local");
        assert_eq!(a.service_node_port_range, PortRange { start: 30000, end: 32767 });
        assert!(!a.disable_agent);
        assert_eq!(a.node_name, None);
        assert_eq!(a.log_level, LogLevel::Info);
        assert_eq!(a.verbose, 0);
        assert_eq!(a.store_compaction_interval, 60);
        assert_eq!(a.store_compaction_retention, 300);
        assert_eq!(a.service_ip(), Some(IpAddr::from([10, 43, 0, 1])));

        // The default config path, without touching the real /etc.
        let cmd = Cli::command();
        let server = cmd.find_subcommand("server").expect("server");
        let config = server.get_arguments().find(|a| a.get_id() == "config").expect("config arg");
        assert_eq!(config.get_default_values(), [OsStr::new(DEFAULT_CONFIG_FILE)]);
        assert_eq!(config.get_env(), Some(OsStr::new("KELP_CONFIG_FILE")));
    }

    #[test]
    fn missing_default_file_is_fine_but_explicit_is_not() {
        let env = Env::new();
        assert!(config_files(&env.config, false).expect("files").is_empty());
        let err = env.parse(&[]).expect_err("explicit missing");
        assert_eq!(err.to_string(), format!("{}: config file not found", env.config.display()));
        // Drop-ins are still read when the main file is missing.
        env.dropin("10-a.yaml", "https-listen-port: 7443\n");
        let files = config_files(&env.config, false).expect("files");
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn file_values_used() {
        let env = Env::new();
        env.write(
            "data-dir: /srv/kelp\n\
             https-listen-port: 7443\n\
             bind-address: 127.0.0.1\n\
             node-ip: [192.168.1.5, 'fd00::5']\n\
             tls-san:\n  - a.example\n  - 10.1.1.1\n\
             write-kubeconfig-mode: 0644\n\
             disable-agent: true\n\
             node-name: edge-1\n\
             cluster-cidr: 10.50.0.0/16\n\
             service-cidr: 10.60.0.0/16\n\
             service-node-port-range: 31000-31999\n\
             log-level: debug\n\
             v: 2\n\
             store-compaction-interval: 5\n",
        );
        let a = env.parse(&[]).expect("parse");
        assert_eq!(a.data_dir, PathBuf::from("/srv/kelp"));
        assert_eq!(a.https_listen_port, 7443);
        assert_eq!(a.bind_address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(a.node_ips.len(), 2);
        assert_eq!(a.tls_sans, vec!["a.example", "10.1.1.1"]);
        assert_eq!(a.write_kubeconfig_mode, 0o644);
        assert!(a.disable_agent);
        assert_eq!(a.node_name.as_deref(), Some("edge-1"));
        assert_eq!(a.service_node_port_range, PortRange { start: 31000, end: 31999 });
        assert_eq!(a.log_level, LogLevel::Debug);
        assert_eq!(a.verbose, 2);
        assert_eq!(a.store_compaction_interval, 5);
        // cluster-dns follows the service CIDR when not set.
        assert_eq!(a.cluster_dns, IpAddr::from([10, 60, 0, 10]));
        assert_eq!(a.service_ip(), Some(IpAddr::from([10, 60, 0, 1])));
    }

    #[test]
    fn unquoted_mode_is_octal_too() {
        let env = Env::new();
        env.write("write-kubeconfig-mode: 644\n");
        assert_eq!(env.parse(&[]).expect("parse").write_kubeconfig_mode, 0o644);
    }

    #[test]
    fn flags_override_file() {
        let env = Env::new();
        env.write("https-listen-port: 7443\ntls-san: [a.example, b.example]\ndisable-agent: true\nv: 1\n");
        let a = env.parse(&["--https-listen-port", "8443", "--tls-san", "c.example", "-vvv"]).expect("parse");
        assert_eq!(a.https_listen_port, 8443);
        assert_eq!(a.tls_sans, vec!["c.example"], "command-line list replaces the file's");
        assert!(a.disable_agent);
        assert_eq!(a.verbose, 3);
        let a = env.parse(&["--tls-san=x,y"]).expect("parse");
        assert_eq!(a.tls_sans, vec!["x", "y"]);
    }

    #[test]
    fn append_across_dropins_in_name_order() {
        let env = Env::new();
        env.write("tls-san: [a.example]\nhttps-listen-port: 1000\n");
        env.dropin("20-second.yaml", "tls-san+: [c.example]\nhttps-listen-port: 3000\n");
        env.dropin("10-first.yaml", "tls-san+: b.example\nhttps-listen-port: 2000\n");
        env.dropin("05-ignored.yml", "https-listen-port: 9999\n");
        fs::create_dir_all(env.config.with_file_name("config.yaml.d/99-dir.yaml")).expect("mkdir");
        let a = env.parse(&[]).expect("parse");
        assert_eq!(a.tls_sans, vec!["a.example", "b.example", "c.example"]);
        assert_eq!(a.https_listen_port, 3000, "last drop-in by name wins");

        // A later plain key replaces what was accumulated.
        env.dropin("30-third.yaml", "tls-san: [d.example]\n");
        assert_eq!(env.parse(&[]).expect("parse").tls_sans, vec!["d.example"]);
        // And a command-line list replaces the lot.
        let a = env.parse(&["--tls-san", "e.example"]).expect("parse");
        assert_eq!(a.tls_sans, vec!["e.example"]);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let env = Env::new();
        env.write("foo: 1\n");
        let err = env.parse(&[]).expect_err("unknown key");
        assert_eq!(err.to_string(), format!("{}: unknown key \"foo\"", env.config.display()));

        env.write("");
        let p = env.dropin("10-x.yaml", "data-dir: /x\nbogus+: [1]\n");
        let err = env.parse(&[]).expect_err("unknown key");
        assert_eq!(err.to_string(), format!("{}: unknown key \"bogus+\"", p.display()));

        // `config` is not a key, neither are help/version.
        env.write("config: /other.yaml\n");
        assert!(matches!(env.parse(&[]), Err(ConfigError::UnknownKey { .. })));
        env.write("help: true\n");
        assert!(matches!(env.parse(&[]), Err(ConfigError::UnknownKey { .. })));
    }

    #[test]
    fn bad_values_name_file_and_key() {
        let env = Env::new();
        let cfg = env.config.display().to_string();
        let cases: &[(&str, &str)] = &[
            ("https-listen-port: x\n", "key \"https-listen-port\": invalid value \"x\": invalid digit"),
            ("https-listen-port: 70000\n", "key \"https-listen-port\": invalid value \"70000\""),
            (
                "write-kubeconfig-mode: \"0999\"\n",
                "key \"write-kubeconfig-mode\": invalid value \"0999\": expected an octal",
            ),
            ("write-kubeconfig-mode: \"01777\"\n", "at most 0777"),
            (
                "log-level: loud\n",
                "key \"log-level\": invalid value \"loud\": expected one of error, warn, info, debug, trace",
            ),
            (
                "service-node-port-range: 5-3\n",
                "key \"service-node-port-range\": invalid value \"5-3\": start 5 is greater than end 3",
            ),
            ("cluster-cidr: nope\n", "key \"cluster-cidr\": invalid value \"nope\""),
            ("node-ip: [1.2.3.4, bad]\n", "key \"node-ip\": invalid value \"bad\""),
            ("disable-agent: yes\n", "key \"disable-agent\": invalid value \"yes\": expected true or false"),
            ("data-dir: [a, b]\n", "key \"data-dir\": expected a single value, got a list"),
            ("data-dir:\n", "key \"data-dir\": missing value"),
            ("data-dir: {a: 1}\n", "key \"data-dir\": expected a scalar value"),
            ("data-dir+: /x\n", "key \"data-dir+\": \"data-dir\" is not a list flag"),
            ("v: many\n", "key \"v\": invalid value \"many\""),
            ("- a\n- b\n", "top level must be a map"),
            ("a: [\n", "invalid yaml"),
        ];
        for (text, want) in cases {
            env.write(text);
            let err = env.parse(&[]).expect_err(text);
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("{cfg}: ")), "{text:?} -> {msg}");
            assert!(msg.contains(want), "{text:?} -> {msg}");
            assert!(!msg.contains('\n'), "{text:?} -> multi-line {msg:?}");
        }
        // A bad value is an error even when the flag is also given on the command line.
        env.write("https-listen-port: x\n");
        assert!(env.parse(&["--https-listen-port", "1"]).is_err());
    }

    #[test]
    fn bad_mode_flag_rejected() {
        let env = Env::new();
        env.write("");
        for bad in ["0800", "rw-r--r--", "", "1777", "-1"] {
            let err = env.parse(&[&format!("--write-kubeconfig-mode={bad}")]).expect_err(bad);
            assert!(matches!(err, ConfigError::Clap(_)), "{bad}: {err}");
            let msg = err.to_string();
            assert!(msg.contains("--write-kubeconfig-mode"), "{msg}");
            assert!(!msg.contains('\n'), "{msg:?}");
            assert_eq!(err.exit_code(), 2);
        }
        for (good, want) in [("0644", 0o644), ("644", 0o644), ("0o600", 0o600), ("0", 0)] {
            assert_eq!(parse_file_mode(good), Ok(want), "{good}");
        }
    }

    #[test]
    fn unknown_flag_is_clap_error() {
        let env = Env::new();
        env.write("");
        let err = env.parse(&["--no-such-flag"]).expect_err("unknown flag");
        assert!(matches!(&err, ConfigError::Clap(e) if e.kind() == ErrorKind::UnknownArgument));
        assert!(err.to_string().contains("--no-such-flag"), "{err}");
        assert!(!err.to_string().contains('\n'));
        assert_ne!(err.exit_code(), 0);
        let err = env.parse(&["--log-level", "loud"]).expect_err("bad level");
        assert_eq!(
            err.to_string(),
            "invalid value 'loud' for '--log-level <LEVEL>': expected one of error, warn, info, debug, trace"
        );
    }

    #[test]
    fn version_and_help() {
        for argv in [vec!["kelp", "--version"], vec!["kelp", "server", "--version"]] {
            let err = parse_cli(argv).expect_err("version");
            assert!(err.is_help_or_version());
            assert_eq!(err.exit_code(), 0);
            assert!(err.to_string().contains("v0.1.0 (kubernetes v1.33.0)"), "{err}");
            assert!(err.to_string().starts_with("kelp"), "{err}");
        }
        let err = parse_cli(["kelp", "server", "--help"]).expect_err("help");
        assert!(err.is_help_or_version());
        let help = err.to_string();
        assert!(help.contains("--tls-san"), "{help}");
        assert!(!help.contains("store-compaction"), "hidden flags stay hidden");
        assert!(parse_cli(["kelp"]).is_err(), "a subcommand is required");
    }

    #[test]
    fn cross_flag_validation() {
        let env = Env::new();
        env.write("");
        let err =
            env.parse(&["--service-cidr", "10.44.0.0/16", "--cluster-dns", "10.43.0.10"]).expect_err("dns outside");
        assert_eq!(
            err.to_string(),
            "--cluster-dns: 10.43.0.10 is not a host address inside --service-cidr 10.44.0.0/16"
        );
        let err = env.parse(&["--cluster-cidr", "10.0.0.0/8"]).expect_err("overlap");
        assert!(err.to_string().starts_with("--service-cidr: "), "{err}");
        let err = env.parse(&["--service-cidr", "10.43.0.0/30"]).expect_err("small");
        assert!(err.to_string().contains("too small"), "{err}");
        let a = env.parse(&["--service-cidr", "fd00:43::/112", "--cluster-cidr", "fd00:42::/56"]).expect("v6");
        assert_eq!(a.cluster_dns, "fd00:43::a".parse::<IpAddr>().expect("ip"));
        assert_eq!(a.service_ip(), Some("fd00:43::1".parse().expect("ip")));
    }

    #[test]
    fn port_range_parsing() {
        assert_eq!("30000-32767".parse(), Ok(PortRange { start: 30000, end: 32767 }));
        let r: PortRange = "80-80".parse().expect("single");
        assert_eq!(r.len(), 1);
        assert!(r.contains(80) && !r.contains(81));
        assert_eq!(r.to_string(), "80-80");
        for bad in ["", "30000", "5-3", "0-10", "1-70000", "a-b"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn container_log_max_size_is_a_byte_quantity() {
        assert_eq!(super::parse_log_max_size("10Mi"), Ok(10 << 20));
        assert_eq!(super::parse_log_max_size("4Ki"), Ok(4096));
        assert_eq!(super::parse_log_max_size("1M"), Ok(1_000_000));
        for bad in ["0", "-1Mi", "1.5", "abc", ""] {
            assert!(super::parse_log_max_size(bad).is_err(), "{bad}");
        }
    }
}
