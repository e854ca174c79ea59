//! Configuration: built-in defaults < config file < `TRADEMIND_<SECTION>__<KEY>` environment
//! variables < command-line flags, validated into `Settings`.
//!
//! Every error names where the bad value came from: `file:line:column` and the key for the file,
//! the variable for the environment, the flag for the command line. No secret is ever read here:
//! credentials live in the OS keyring and the config only names the entry.

pub mod demo;
pub mod endpoints;
pub mod tui;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Prefix of environment variables that override config keys: `TRADEMIND_RISK__HEAT_CAP_PCT=5`.
pub const ENV_PREFIX: &str = "TRADEMIND_";
/// Separator between section and key in an override variable.
pub const ENV_SEPARATOR: &str = "__";

/// Refuse a starting cash above [`MAX_PAPER_STARTING_BALANCE`]: equity that large overflows
/// Decimal's 28 digits in the first sum (a backtest with `initial_cash` near Decimal::MAX
/// panicked with "Addition overflowed").
pub fn check_starting_cash(key: &str, v: rust_decimal::Decimal) -> Result<(), (String, String)> {
    if v > MAX_PAPER_STARTING_BALANCE {
        return Err((
            key.to_string(),
            format!("{v} is too large: at most {MAX_PAPER_STARTING_BALANCE}"),
        ));
    }
    Ok(())
}

/// The largest `trading.paper_starting_balance` (and backtest starting cash) accepted: a
/// trillion USDT.
pub const MAX_PAPER_STARTING_BALANCE: rust_decimal::Decimal =
    rust_decimal::Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub general: GeneralConfig,
    pub trading: TradingConfig,
    pub scheduler: SchedulerConfig,
    pub notifications: crate::services::notification::NotificationConfig,
    pub telegram: crate::services::telegram::TelegramConfig,
    pub market_data: crate::services::market_data::MarketDataConfig,
    pub exchange: crate::services::exchange::ExchangeConfig,
    /// Default risk limits; `trademind risk set` stores overrides (default or per strategy) in
    /// the database, which win over this section.
    pub risk: crate::domain::risk::RiskConfig,
    pub stream: crate::services::market_stream::StreamConfig,
    pub backtest: crate::domain::backtest::BacktestSettings,
    pub llm: crate::services::llm::LlmConfig,
    pub rules: crate::domain::decision::RulesConfig,
    pub tui: tui::TuiConfig,
    pub secrets: crate::secrets::SecretsConfig,
    pub demo: demo::DemoConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneralConfig {
    /// Where the database and logs live; empty means the platform data dir.
    pub data_dir: Option<PathBuf>,
    /// trace | debug | info | warn | error
    pub log_level: String,
    /// Daily log files kept in `<data_dir>/logs`.
    pub log_max_files: u32,
}

impl Default for GeneralConfig {
    fn default() -> Self {
        GeneralConfig {
            data_dir: None,
            log_level: "info".into(),
            log_max_files: 14,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TradingConfig {
    /// Live trading on Binance production must be switched on here explicitly.
    pub live: bool,
    /// Which exchange connection trades: "paper" (default) or the name of a Binance connection.
    pub connection: String,
    /// Symbols the default strategy trades.
    pub symbols: Vec<String>,
    /// Candle interval the default strategy decides on.
    pub interval: String,
    /// Quote balance the paper exchange starts with.
    pub paper_starting_balance: String,
    /// How far below the stop trigger a protective stop-limit's limit price sits, % of the
    /// stop (room for the fill in a fast market). Default 0.5.
    pub stop_limit_offset_pct: rust_decimal::Decimal,
}

impl Default for TradingConfig {
    fn default() -> Self {
        TradingConfig {
            live: false,
            connection: "paper".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "1h".into(),
            paper_starting_balance: "10000".into(),
            stop_limit_offset_pct: rust_decimal::Decimal::new(5, 1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Minutes between autonomous trading runs per active strategy (aligned to candle closes).
    pub autonomous_trading_minutes: u64,
    /// Seconds between order-monitoring polls (the fallback when the user-data stream is down).
    pub monitor_orders_seconds: u64,
    /// Seconds between REST price refreshes when the WebSocket is down.
    pub update_prices_seconds: u64,
    /// Backtests waiting in the on-demand queue before new requests are refused.
    pub backtest_queue_size: usize,
    /// Seconds after a candle close before the trading run starts, so the closed candle is
    /// available from the exchange.
    pub candle_close_offset_seconds: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            autonomous_trading_minutes: 15,
            monitor_orders_seconds: 30,
            update_prices_seconds: 10,
            backtest_queue_size: 8,
            candle_close_offset_seconds: 5,
        }
    }
}

/// Where a value came from, for `config show` and for error messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    Default,
    File { path: PathBuf, line: usize },
    Env { var: String },
    Flag { flag: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env { var } => write!(f, "env {var}"),
            Origin::Flag { flag } => write!(f, "flag {flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {key}: {message}", path.display())]
    File {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{flag}: {message}")]
    Flag { flag: String, message: String },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// Overrides given on the command line (they win over everything).
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    pub data_dir: Option<PathBuf>,
    pub log_level: Option<String>,
}

/// Settings plus the origin of every leaf key (`section.key`).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub settings: Settings,
    pub origins: BTreeMap<String, Origin>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
}

/// The config file used when `--config` is not given: `<platform config dir>/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "trademind").map(|d| d.config_dir().join("config.toml"))
}

/// The data dir used when neither flag, env nor file sets one.
pub fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "trademind")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".trademind"))
}

impl Settings {
    /// Range and consistency checks that serde cannot express. Returns (key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];
        if !LEVELS.contains(&self.general.log_level.to_ascii_lowercase().as_str()) {
            return Err((
                "general.log_level".into(),
                format!(
                    "{:?} is not one of {}",
                    self.general.log_level,
                    LEVELS.join(", ")
                ),
            ));
        }
        if self.general.log_max_files == 0 {
            return Err(("general.log_max_files".into(), "must be at least 1".into()));
        }
        if self.trading.symbols.is_empty() {
            return Err(("trading.symbols".into(), "list at least one symbol".into()));
        }
        for s in &self.trading.symbols {
            crate::domain::Symbol::new(s)
                .map_err(|e| ("trading.symbols".to_string(), e.to_string()))?;
        }
        self.trading
            .interval
            .parse::<crate::domain::market::Interval>()
            .map_err(|e| ("trading.interval".to_string(), e.to_string()))?;
        if self.trading.connection.trim().is_empty() {
            return Err((
                "trading.connection".into(),
                "must name a connection (\"paper\" for the paper exchange)".into(),
            ));
        }
        match self
            .trading
            .paper_starting_balance
            .parse::<rust_decimal::Decimal>()
        {
            // Bounded so that equity times a price, a percentage or a fee stays far inside
            // Decimal's 28 digits: a balance near Decimal::MAX passed here and then overflowed
            // (a panic) in the first sizing or heat sum.
            Ok(v) if v > rust_decimal::Decimal::ZERO && v <= MAX_PAPER_STARTING_BALANCE => {}
            _ => {
                return Err((
                    "trading.paper_starting_balance".into(),
                    format!(
                        "{:?} must be a positive decimal number such as \"10000\", at most {MAX_PAPER_STARTING_BALANCE}",
                        self.trading.paper_starting_balance
                    ),
                ));
            }
        }
        let offset = self.trading.stop_limit_offset_pct;
        if offset < rust_decimal::Decimal::ZERO || offset >= rust_decimal::Decimal::from(50) {
            return Err((
                "trading.stop_limit_offset_pct".into(),
                format!("{offset} must be at least 0 and below 50"),
            ));
        }
        self.llm.validate().map_err(|m| ("llm".to_string(), m))?;
        self.rules
            .validate()
            .map_err(|m| ("rules".to_string(), m))?;
        // (`load` narrows "llm" and "rules" to the key the message names, for its location.)
        self.secrets
            .validate()
            .map_err(|m| ("secrets.backend".to_string(), m))?;
        let s = &self.scheduler;
        if !(1..=1440).contains(&s.autonomous_trading_minutes) {
            return Err((
                "scheduler.autonomous_trading_minutes".into(),
                "must be between 1 and 1440".into(),
            ));
        }
        if !(1..=3600).contains(&s.monitor_orders_seconds) {
            return Err((
                "scheduler.monitor_orders_seconds".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        if !(1..=3600).contains(&s.update_prices_seconds) {
            return Err((
                "scheduler.update_prices_seconds".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        if !(1..=1000).contains(&s.backtest_queue_size) {
            return Err((
                "scheduler.backtest_queue_size".into(),
                "must be between 1 and 1000".into(),
            ));
        }
        if s.candle_close_offset_seconds >= s.autonomous_trading_minutes * 60 {
            return Err((
                "scheduler.candle_close_offset_seconds".into(),
                "must be shorter than the trading period (scheduler.autonomous_trading_minutes)"
                    .into(),
            ));
        }
        self.demo
            .validate()
            .map_err(|(key, message)| (format!("demo.{key}"), message))?;
        self.market_data.validate()?;
        self.exchange.validate()?;
        self.risk.validate().map_err(|e| match e {
            crate::domain::risk::RiskConfigError::OutOfRange { key, .. } => {
                (format!("risk.{key}"), e.to_string())
            }
            other => ("risk".to_string(), other.to_string()),
        })?;
        self.stream
            .validate()
            .map_err(|(key, message)| (format!("stream.{key}"), message))?;
        self.backtest.validate()?;
        check_starting_cash("backtest.initial_cash", self.backtest.initial_cash)?;
        self.tui.validate()?;
        self.notifications.validate()?;
        self.telegram.validate()?;
        Ok(())
    }

    /// The data dir after all layers, or the platform default.
    pub fn data_dir(&self) -> PathBuf {
        self.general
            .data_dir
            .clone()
            .unwrap_or_else(default_data_dir)
    }
}

/// Load and validate the configuration.
///
/// `explicit_file` is `--config`; when it is `None` the default path is read if it exists.
/// `env` is the process environment (passed in so tests control it).
pub fn load(
    explicit_file: Option<&Path>,
    env: &[(String, String)],
    flags: &FlagOverrides,
) -> Result<LoadedConfig, ConfigError> {
    let defaults =
        toml::Table::try_from(Settings::default()).map_err(|e| ConfigError::Invalid {
            origin: "default".into(),
            key: String::new(),
            message: e.to_string(),
        })?;
    let mut merged = defaults;
    let mut origins = BTreeMap::new();
    leaf_keys(&merged, "", &mut |k| {
        origins.insert(k, Origin::Default);
    });

    // 1. the file
    let file_path = match explicit_file {
        Some(p) => Some(p.to_path_buf()),
        None => default_config_path().filter(|p| p.exists()),
    };
    let mut file_text = None;
    if let Some(path) = &file_path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        // A key an older version had: name what replaced it.
        if let Ok(table) = toml::from_str::<toml::Table>(&text) {
            let mut removed = None;
            leaf_keys(&table, "", &mut |k| {
                if removed.is_none()
                    && let Some(hint) = endpoints::removed_key(&k)
                {
                    removed = Some((k, hint));
                }
            });
            if let Some((key, hint)) = removed {
                let (line, column) = locate_key(&text, &key).unwrap_or((0, 0));
                return Err(ConfigError::File {
                    path: path.clone(),
                    line,
                    column,
                    message: format!("{key} was removed: {hint}"),
                    key,
                });
            }
        }
        // Typed parse first: unknown keys and wrong types fail here, with a span.
        if let Err(err) = toml::from_str::<Settings>(&text) {
            return Err(file_error(path, &text, &err));
        }
        let table: toml::Table =
            toml::from_str(&text).map_err(|err| file_error(path, &text, &err))?;
        leaf_keys(&table, "", &mut |k| {
            let line = locate_key(&text, &k).map(|(l, _)| l).unwrap_or(0);
            origins.insert(
                k,
                Origin::File {
                    path: path.clone(),
                    line,
                },
            );
        });
        merge(&mut merged, table);
        file_text = Some(text);
    }

    // 2. the environment: `TRADEMIND_<SECTION>__<KEY>`, at any depth
    // (`TRADEMIND_EXCHANGE__BINANCE__BASE_URL`), each value read as the type of its key.
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // `TRADEMIND_BINANCE_API_SECRET` and the like (no separator) are secrets, not keys.
        if !rest.contains(ENV_SEPARATOR) {
            continue;
        }
        let path: Vec<String> = rest
            .split(ENV_SEPARATOR)
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let dotted = path.join(".");
        if let Some(hint) = endpoints::removed_key(&dotted) {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: format!("{dotted} was removed: {hint}"),
            });
        }
        if path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: format!(
                    "{dotted:?} is not a key: use {ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY>"
                ),
            });
        }
        let one = env_value_table(&merged, &path, value).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message: format!("{dotted}: {message}"),
        })?;
        origins.insert(dotted, Origin::Env { var: var.clone() });
        merge(&mut merged, one);
    }

    // 3. the flags
    let mut flag_table = toml::Table::new();
    let mut general = toml::Table::new();
    if let Some(dir) = &flags.data_dir {
        general.insert(
            "data_dir".into(),
            toml::Value::String(dir.display().to_string()),
        );
        origins.insert(
            "general.data_dir".into(),
            Origin::Flag {
                flag: "--data-dir".into(),
            },
        );
    }
    if let Some(level) = &flags.log_level {
        general.insert("log_level".into(), toml::Value::String(level.clone()));
        origins.insert(
            "general.log_level".into(),
            Origin::Flag {
                flag: "--log-level".into(),
            },
        );
    }
    if !general.is_empty() {
        flag_table.insert("general".into(), toml::Value::Table(general));
        merge(&mut merged, flag_table);
    }

    let settings: Settings =
        merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                origin: "merged configuration".into(),
                key: String::new(),
                message: e.message().to_string(),
            })?;

    if let Err((key, message)) = settings.validate() {
        let key = key_named_in(&key, &message, &origins);
        let origin = origins.get(&key).cloned().unwrap_or(Origin::Default);
        return Err(match (&origin, &file_path, &file_text) {
            (Origin::File { .. }, Some(path), Some(text)) => {
                let (line, column) = locate_key(text, &key).unwrap_or((0, 0));
                ConfigError::File {
                    path: path.clone(),
                    line,
                    column,
                    key,
                    message,
                }
            }
            (Origin::Env { var }, _, _) => ConfigError::Env {
                var: var.clone(),
                message: format!("{key}: {message}"),
            },
            (Origin::Flag { flag }, _, _) => ConfigError::Flag {
                flag: flag.clone(),
                message,
            },
            _ => ConfigError::Invalid {
                origin: origin.to_string(),
                key,
                message,
            },
        });
    }

    Ok(LoadedConfig {
        settings,
        origins,
        file: file_path,
    })
}

/// The value at a dotted path of a table, if present.
fn value_at<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut t = table;
    for p in parents {
        t = t.get(p)?.as_table()?;
    }
    t.get(last)
}

/// `path = value` as a nested table, the value read as the type the key has (`existing`, its
/// default or file value): a string key takes the text as it is (`50000` stays the decimal
/// string it is meant to be), a number, boolean or list key takes TOML (`5`, `true`,
/// `["BTCUSDT"]`; a list of strings also as `BTCUSDT,ETHUSDT`). A key without a value yet (an
/// unset optional one) takes TOML when it parses, else the text. The result is checked against
/// the settings' types on top of `merged` (the layers so far: a map entry such as
/// `llm.prices.<model>` needs its sibling keys), so a wrong type or an unknown key is refused
/// here, naming the variable.
fn env_value_table(
    merged: &toml::Table,
    path: &[String],
    raw: &str,
) -> Result<toml::Table, String> {
    let existing = value_at(merged, path);
    let parsed = parse_toml_value(raw);
    let text = toml::Value::String(raw.to_string());
    let candidates: Vec<toml::Value> = match existing {
        // A quoted value ("4h") is the string inside the quotes.
        Some(toml::Value::String(_)) => match parsed {
            Some(v @ toml::Value::String(_)) => vec![v],
            _ => vec![text],
        },
        // `1` for a float key is 1.0 (TOML's integers do not become floats by themselves).
        Some(toml::Value::Float(_)) => match parsed {
            Some(toml::Value::Integer(i)) => vec![toml::Value::Float(i as f64)],
            Some(v) => vec![v],
            None => vec![text],
        },
        Some(toml::Value::Array(_)) => match parsed {
            Some(v @ toml::Value::Array(_)) => vec![v],
            _ => vec![toml::Value::Array(
                raw.split(',')
                    .map(|p| p.trim())
                    .filter(|p| !p.is_empty())
                    .map(|p| toml::Value::String(p.to_string()))
                    .collect(),
            )],
        },
        Some(_) => vec![parsed.unwrap_or(text)],
        None => parsed.into_iter().chain([text]).collect(),
    };
    let mut first_error = None;
    for value in candidates {
        let one = nest(path, value);
        let mut whole = merged.clone();
        merge(&mut whole, one.clone());
        let probe: Result<Settings, _> = whole.try_into();
        match probe {
            Ok(_) => return Ok(one),
            Err(e) => {
                first_error.get_or_insert_with(|| e.message().trim().to_string());
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "cannot be set from the environment".into()))
}

/// `a.b.c = value` as nested tables.
fn nest(path: &[String], value: toml::Value) -> toml::Table {
    let mut value = value;
    for p in path.iter().rev() {
        let mut t = toml::Table::new();
        t.insert(p.clone(), value);
        value = toml::Value::Table(t);
    }
    match value {
        toml::Value::Table(t) => t,
        _ => toml::Table::new(),
    }
}

/// A TOML value (`5`, `true`, `"x"`, `["a"]`), or `None` when the text is not one.
fn parse_toml_value(raw: &str) -> Option<toml::Value> {
    let doc = format!("v = {raw}");
    toml::from_str::<toml::Table>(&doc)
        .ok()
        .and_then(|mut t| t.remove("v"))
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn leaf_keys(table: &toml::Table, prefix: &str, f: &mut dyn FnMut(String)) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => leaf_keys(t, &path, f),
            _ => f(path),
        }
    }
}

/// 1-based (line, column) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// Turn a toml error into one that names file:line:column and the dotted key.
fn file_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map(|s| s.start).unwrap_or(0);
    let (line, column) = line_col(text, offset);
    let message = err.message().trim().to_string();
    let key = key_at(text, offset, &message);
    ConfigError::File {
        path: path.to_path_buf(),
        line,
        column,
        key,
        message,
    }
}

/// The dotted key at a byte offset: the section header above it plus the key on its line.
/// An unknown-field message names the field itself, which wins when present.
fn key_at(text: &str, offset: usize, message: &str) -> String {
    let before = &text[..offset.min(text.len())];
    let mut section = String::new();
    for line in before.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let trimmed = line_text.trim();
    let mut key = if trimmed.starts_with('[') {
        String::new()
    } else {
        line_text
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string()
    };
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        key = field.to_string();
        if trimmed.starts_with('[') {
            // an unknown section: the header itself is the key
            return field.to_string();
        }
    }
    match (section.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => section,
        (false, false) => format!("{section}.{key}"),
    }
}

/// A section's validation (`[llm]`, `[rules]`) reports the section; its message names the
/// key(s) at fault (`llm.temperature 3 must be …`). The key is the first one named that the user
/// set (defaults are valid, so one of them was set), else the first named, else the section, so
/// the error can point at the file and line instead of saying "default".
fn key_named_in(section: &str, message: &str, origins: &BTreeMap<String, Origin>) -> String {
    if origins.contains_key(section) {
        return section.to_string();
    }
    let prefix = format!("{section}.");
    let named: Vec<&str> = message
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| w.starts_with(&prefix) && origins.contains_key(*w))
        .collect();
    named
        .iter()
        .find(|k| !matches!(origins.get(**k), Some(Origin::Default) | None))
        .or(named.first())
        .map_or_else(|| section.to_string(), |k| (*k).to_string())
}

/// Find `key` (dotted `section.key`) in the file text: 1-based line and column of the key.
fn locate_key(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let (section, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        if current != section {
            continue;
        }
        if let Some((lhs, _)) = line.split_once('=')
            && lhs.trim().trim_matches('"') == key
        {
            let column = line.find(lhs.trim()).unwrap_or(0) + 1;
            return Some((i + 1, column));
        }
    }
    None
}

/// Every leaf key of the effective settings with its value (as TOML text) and origin.
pub fn describe(loaded: &LoadedConfig) -> Vec<(String, String, Origin)> {
    let table = toml::Table::try_from(&loaded.settings).unwrap_or_default();
    let mut rows = Vec::new();
    collect_values(&table, "", &mut rows);
    rows.into_iter()
        .map(|(k, v)| {
            let origin = loaded.origins.get(&k).cloned().unwrap_or(Origin::Default);
            (k, v, origin)
        })
        .collect()
}

fn collect_values(table: &toml::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => collect_values(t, &path, out),
            other => out.push((path, other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_come_from_default() {
        let empty = write("");
        let loaded = load(Some(empty.path()), &[], &FlagOverrides::default()).unwrap();
        assert_eq!(loaded.settings, Settings::default());
        assert_eq!(
            loaded.origins["scheduler.monitor_orders_seconds"],
            Origin::Default
        );
    }

    #[test]
    fn layers_apply_in_order_default_file_env_flag() {
        let f = write(
            "[general]\nlog_level = \"debug\"\nlog_max_files = 3\n\n[scheduler]\nmonitor_orders_seconds = 20\n",
        );
        let e = env(&[
            ("TRADEMIND_SCHEDULER__MONITOR_ORDERS_SECONDS", "45"),
            ("TRADEMIND_GENERAL__LOG_LEVEL", "warn"),
            ("TRADEMIND_BINANCE_API_SECRET", "must-be-ignored"),
            ("UNRELATED", "x"),
        ]);
        let flags = FlagOverrides {
            data_dir: None,
            log_level: Some("error".into()),
        };
        let loaded = load(Some(f.path()), &e, &flags).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.general.log_max_files, 3); // file
        assert_eq!(s.scheduler.monitor_orders_seconds, 45); // env beats file
        assert_eq!(s.general.log_level, "error"); // flag beats env
        assert_eq!(s.scheduler.autonomous_trading_minutes, 15); // default
        assert_eq!(
            loaded.origins["general.log_max_files"],
            Origin::File {
                path: f.path().to_path_buf(),
                line: 3
            }
        );
        assert_eq!(
            loaded.origins["scheduler.monitor_orders_seconds"],
            Origin::Env {
                var: "TRADEMIND_SCHEDULER__MONITOR_ORDERS_SECONDS".into()
            }
        );
        assert_eq!(
            loaded.origins["general.log_level"],
            Origin::Flag {
                flag: "--log-level".into()
            }
        );
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let f =
            write("[general]\nlog_level = \"info\"\n\n[scheduler]\nmonitor_order_seconds = 30\n");
        let err = load(Some(f.path()), &[], &FlagOverrides::default()).unwrap_err();
        match &err {
            ConfigError::File {
                line,
                column,
                key,
                message,
                ..
            } => {
                assert_eq!((*line, *column), (5, 1));
                assert_eq!(key, "scheduler.monitor_order_seconds");
                assert!(message.contains("unknown field"), "{message}");
            }
            other => panic!("wrong error {other:?}"),
        }
        assert!(
            err.to_string()
                .contains(":5:1: scheduler.monitor_order_seconds"),
            "{err}"
        );
    }

    #[test]
    fn unknown_section_is_an_error() {
        let f = write("[nonsense]\nx = 1\n");
        let err = load(Some(f.path()), &[], &FlagOverrides::default()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::File { line: 1, key, .. } if key == "nonsense"),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let f = write("[trading]\nlive = \"yes\"\n");
        let err = load(Some(f.path()), &[], &FlagOverrides::default()).unwrap_err();
        match &err {
            ConfigError::File {
                line, key, message, ..
            } => {
                assert_eq!(*line, 2);
                assert_eq!(key, "trading.live");
                assert!(message.contains("invalid type"), "{message}");
            }
            other => panic!("wrong error {other:?}"),
        }
    }

    #[test]
    fn risk_section_accepts_decimal_strings_and_numbers_and_env_overrides() {
        use rust_decimal_macros::dec;
        let f = write(
            "[risk]\nmax_daily_loss_pct = \"2.5\"\nheat_cap_pct = 5\nsizing_mode = \"atr\"\n",
        );
        let loaded = load(
            Some(f.path()),
            &env(&[("TRADEMIND_RISK__MIN_CONFIDENCE", "0.7")]),
            &FlagOverrides::default(),
        )
        .unwrap();
        let r = &loaded.settings.risk;
        assert_eq!(r.max_daily_loss_pct, dec!(2.5));
        assert_eq!(r.heat_cap_pct, dec!(5));
        assert_eq!(r.min_confidence, dec!(0.7));
        assert_eq!(r.sizing_mode, crate::domain::risk::SizingMode::Atr);
        assert_eq!(r.max_open_positions, 3);
    }

    #[test]
    fn out_of_range_risk_value_names_the_key() {
        let f = write("[risk]\nmax_daily_loss_pct = \"0\"\n");
        let err = load(Some(f.path()), &[], &FlagOverrides::default()).unwrap_err();
        match &err {
            ConfigError::File { line, key, .. } => {
                assert_eq!(*line, 2);
                assert_eq!(key, "risk.max_daily_loss_pct");
            }
            other => panic!("wrong error {other:?}"),
        }
    }

    #[test]
    fn out_of_range_value_names_file_line_and_key() {
        let f = write("# comment\n[scheduler]\nautonomous_trading_minutes = 0\n");
        let err = load(Some(f.path()), &[], &FlagOverrides::default()).unwrap_err();
        match &err {
            ConfigError::File {
                line, column, key, ..
            } => {
                assert_eq!((*line, *column), (3, 1));
                assert_eq!(key, "scheduler.autonomous_trading_minutes");
            }
            other => panic!("wrong error {other:?}"),
        }
    }

    #[test]
    fn bad_environment_override_names_the_variable() {
        let e = env(&[("TRADEMIND_SCHEDULER__MONITOR_ORDERS_SECONDS", "soon")]);
        let err = load(Some(write("").path()), &e, &FlagOverrides::default()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Env { var, .. } if var == "TRADEMIND_SCHEDULER__MONITOR_ORDERS_SECONDS"),
            "{err:?}"
        );
        let e = env(&[("TRADEMIND_SCHEDULER__NOPE", "1")]);
        assert!(matches!(
            load(Some(write("").path()), &e, &FlagOverrides::default()),
            Err(ConfigError::Env { .. })
        ));
        let e = env(&[("TRADEMIND_TRADING__INTERVAL", "7m")]);
        assert!(matches!(
            load(Some(write("").path()), &e, &FlagOverrides::default()),
            Err(ConfigError::Env { .. })
        ));
    }

    #[test]
    fn bad_flag_value_names_the_flag() {
        let flags = FlagOverrides {
            data_dir: None,
            log_level: Some("loud".into()),
        };
        let err = load(Some(write("").path()), &[], &flags).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Flag { flag, .. } if flag == "--log-level"),
            "{err:?}"
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = load(
            Some(Path::new("/nonexistent/trademind.toml")),
            &[],
            &FlagOverrides::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn describe_lists_every_key_with_its_origin() {
        let f = write("[trading]\ninterval = \"4h\"\n");
        let loaded = load(Some(f.path()), &[], &FlagOverrides::default()).unwrap();
        let rows = describe(&loaded);
        let interval = rows
            .iter()
            .find(|(k, _, _)| k == "trading.interval")
            .unwrap();
        assert_eq!(interval.1, "\"4h\"");
        assert!(matches!(interval.2, Origin::File { line: 2, .. }));
        assert!(
            rows.iter()
                .any(|(k, _, o)| k == "scheduler.monitor_orders_seconds" && *o == Origin::Default)
        );
    }

    #[test]
    fn nested_keys_are_set_from_the_environment_at_any_depth() {
        let e = env(&[
            (
                "TRADEMIND_EXCHANGE__BINANCE__BASE_URL",
                "http://127.0.0.1:9400",
            ),
            ("TRADEMIND_LLM__TAVILY__BASE_URL", "http://127.0.0.1:9500"),
            (
                "TRADEMIND_EXCHANGE__PAPER__SYMBOLS",
                "BTCUSDT,ETHUSDT,SOLUSDT",
            ),
        ]);
        let loaded = load(Some(write("").path()), &e, &FlagOverrides::default()).unwrap();
        let s = &loaded.settings;
        assert_eq!(
            s.exchange.binance.base_url.as_deref(),
            Some("http://127.0.0.1:9400")
        );
        assert_eq!(s.llm.tavily.base_url, "http://127.0.0.1:9500");
        assert_eq!(s.exchange.paper.symbols.len(), 3);
        assert_eq!(
            loaded.origins["exchange.binance.base_url"],
            Origin::Env {
                var: "TRADEMIND_EXCHANGE__BINANCE__BASE_URL".into()
            }
        );
    }

    #[test]
    fn an_environment_value_is_read_as_the_type_of_its_key() {
        let e = env(&[
            ("TRADEMIND_TRADING__PAPER_STARTING_BALANCE", "50000"),
            ("TRADEMIND_LLM__TEMPERATURE", "1"),
            ("TRADEMIND_LLM__MODEL", "123"),
            ("TRADEMIND_TRADING__INTERVAL", "\"4h\""),
            ("TRADEMIND_EXCHANGE__EXECUTOR__NOT_FOUND_GRACE_MS", "6000"),
        ]);
        let s = load(Some(write("").path()), &e, &FlagOverrides::default())
            .unwrap()
            .settings;
        assert_eq!(s.trading.paper_starting_balance, "50000");
        assert_eq!(s.llm.temperature, 1.0);
        assert_eq!(s.llm.model, "123");
        assert_eq!(s.trading.interval, "4h");
        assert_eq!(s.exchange.executor.not_found_grace_ms, Some(6000));
    }

    #[test]
    fn a_removed_endpoint_key_names_its_replacement_in_the_file_and_the_environment() {
        let f = write("[stream]\ntestnet_ws_base_url = \"wss://stream.testnet.binance.vision\"\n");
        let err = load(Some(f.path()), &[], &FlagOverrides::default()).unwrap_err();
        match &err {
            ConfigError::File { line, key, .. } => {
                assert_eq!((*line, key.as_str()), (2, "stream.testnet_ws_base_url"));
            }
            other => panic!("wrong error {other:?}"),
        }
        assert!(err.to_string().contains("stream.ws_base_url"), "{err}");
        let e = env(&[("TRADEMIND_EXCHANGE__BINANCE__TESTNET_URL", "https://x")]);
        let err = load(Some(write("").path()), &e, &FlagOverrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("exchange.binance.base_url"),
            "{err}"
        );
    }

    /// Every key of config.example.toml, commented-out optional ones included, as
    /// (path, value).
    fn example_keys() -> Vec<(Vec<String>, toml::Value)> {
        let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"));
        let mut keys = Vec::new();
        let table: toml::Table = toml::from_str(text).unwrap();
        collect_leaves(&table, &[], &mut keys);
        // `# key = value` lines are the optional keys, unset by default.
        let mut section = String::new();
        // Keys of a commented-out `[[array.of.tables]]` entry are not settable one by one: the
        // array is set whole (see the webhooks case in the test).
        let mut in_array = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') && t.ends_with(']') {
                section = t.trim_matches(|c| c == '[' || c == ']').to_string();
                in_array = t.starts_with("[[");
                continue;
            }
            let Some(commented) = t.strip_prefix("# ") else {
                continue;
            };
            if commented.starts_with("[[") && commented.ends_with("]]") {
                in_array = true;
                continue;
            }
            if in_array {
                continue;
            }
            let Some((k, v)) = commented.split_once(" = ") else {
                continue;
            };
            if k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && let Some(v) = parse_toml_value(v)
            {
                let mut path: Vec<String> = section.split('.').map(str::to_string).collect();
                path.push(k.to_string());
                keys.push((path, v));
            }
        }
        keys
    }

    fn collect_leaves(
        table: &toml::Table,
        prefix: &[String],
        out: &mut Vec<(Vec<String>, toml::Value)>,
    ) {
        for (k, v) in table {
            let mut path = prefix.to_vec();
            path.push(k.clone());
            match v {
                toml::Value::Table(t) => collect_leaves(t, &path, out),
                other => out.push((path, other.clone())),
            }
        }
    }

    /// How a value is written in an environment variable: text as it is, the rest as TOML.
    fn env_text(v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    #[test]
    fn every_key_of_the_example_config_can_be_set_through_the_environment() {
        let keys = example_keys();
        assert!(keys.len() > 100, "only {} keys found", keys.len());
        for optional in [
            "general.data_dir",
            "exchange.binance.base_url",
            "exchange.executor.not_found_grace_ms",
            "llm.prompt_template",
        ] {
            assert!(
                keys.iter().any(|(k, _)| k.join(".") == optional),
                "{optional} missing from the walk"
            );
        }
        let empty = write("");
        for (path, value) in keys {
            // Map keys (`llm.prices."grok-4.3"`) are lower-cased like every other segment.
            let key = path.join(".");
            let var = format!(
                "{ENV_PREFIX}{}",
                path.iter()
                    .map(|p| p.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(ENV_SEPARATOR)
            );
            let text = env_text(&value);
            let loaded = load(
                Some(empty.path()),
                &[(var.clone(), text.clone())],
                &FlagOverrides::default(),
            )
            .unwrap_or_else(|e| panic!("{var}={text}: {e}"));
            assert_eq!(
                loaded.origins.get(&key),
                Some(&Origin::Env { var: var.clone() }),
                "{var}"
            );
            let effective = toml::Table::try_from(&loaded.settings).unwrap();
            let got = value_at(&effective, &path)
                .unwrap_or_else(|| panic!("{key} not in the effective settings"));
            assert_eq!(env_text(got), text, "{var}");
        }
        // An array of tables is set whole, as a TOML inline array.
        let var = format!("{ENV_PREFIX}NOTIFICATIONS{ENV_SEPARATOR}WEBHOOKS");
        let text = r#"[{ name = "ops", url = "https://example.com/hook", format = "slack" }]"#;
        let loaded = load(
            Some(empty.path()),
            &[(var.clone(), text.to_string())],
            &FlagOverrides::default(),
        )
        .unwrap_or_else(|e| panic!("{var}={text}: {e}"));
        let effective = toml::Table::try_from(&loaded.settings).unwrap();
        let hooks = value_at(&effective, &["notifications".into(), "webhooks".into()])
            .and_then(|v| v.as_array())
            .unwrap_or_else(|| panic!("{var} not applied"));
        assert_eq!(hooks.len(), 1, "{var}");
        assert_eq!(hooks[0].get("name").and_then(|v| v.as_str()), Some("ops"));
    }
}
