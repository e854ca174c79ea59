//! `trademind keys set|list|delete|test`: credentials in the OS keyring. A secret is read from a
//! hidden prompt, or from stdin when stdin is not a terminal, never from the command line (it
//! would land in shell history and be visible to every user through `ps`).
//!
//! `keys list` and `keys test` ask `Secrets::get` (the lookup every command uses) for each
//! entry this data dir could use, so they show exactly what a command would use and where it
//! lives; the SQLite record only adds when an entry was set.

use std::ffi::OsStr;
use std::io::{IsTerminal, Read, Write};

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{Context, UsageError};
use crate::app::key_check::{Endpoints, KeyStatus, check_key};
use crate::secrets::{
    Backend, ConnectionName, Credential, KeyringPlace, Secret, SecretId, SecretKind, Secrets,
};
use crate::services::exchange::binance::client::BinanceEnvironment;
use crate::store::secret_entries::{self, SecretEntry};
use crate::store::strategies;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Store a credential: typed at a hidden prompt, or piped on stdin (Binance: key line, then
    /// secret line). Never given as an argument.
    Set(SetArgs),
    /// Show which credentials are stored and when they were set (never their values).
    List,
    /// Remove a stored credential.
    Delete {
        #[arg(value_parser = KindParser)]
        kind: SecretKind,
        #[arg(long, default_value = ConnectionName::DEFAULT, value_parser = ConnectionParser)]
        connection: ConnectionName,
    },
    /// Check each stored credential against its service (one cheap authenticated request:
    /// ok / rejected / unreachable); exit code 1 if any fails.
    Test {
        /// Only check that each key can be read back and is well formed; no network.
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[arg(value_parser = KindParser)]
    pub kind: SecretKind,
    /// Connection the credential belongs to (several Binance accounts, a second Grok key...).
    #[arg(long, default_value = ConnectionName::DEFAULT, value_parser = ConnectionParser)]
    pub connection: ConnectionName,
    // The next three exist only to refuse a secret given on the command line with a clear
    // message instead of clap's generic one (which would also echo the value).
    #[arg(hide = true, num_args = 0.., allow_hyphen_values = true)]
    pub stray: Vec<String>,
    #[arg(long = "api-key", alias = "key", hide = true, num_args = 0..=1, default_missing_value = "")]
    pub api_key_flag: Option<String>,
    #[arg(
        long = "api-secret",
        aliases = ["secret", "value", "password"],
        hide = true,
        num_args = 0..=1,
        default_missing_value = ""
    )]
    pub api_secret_flag: Option<String>,
}

/// Parses the key kind without ever quoting what was typed: a key pasted into the kind position
/// must not come back on the terminal (clap's own error for a value enum repeats the value).
#[derive(Debug, Clone, Copy)]
struct KindParser;

impl clap::builder::TypedValueParser for KindParser {
    type Value = SecretKind;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<SecretKind, clap::Error> {
        value.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
            hidden_value_error(
                cmd,
                "unknown key kind; expected binance, grok, tavily, resend or telegram",
            )
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            SecretKind::ALL
                .into_iter()
                .map(|k| clap::builder::PossibleValue::new(k.as_str())),
        ))
    }
}

/// Parses `--connection` without quoting the value, for the same reason as `KindParser`.
#[derive(Debug, Clone, Copy)]
struct ConnectionParser;

impl clap::builder::TypedValueParser for ConnectionParser {
    type Value = ConnectionName;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<ConnectionName, clap::Error> {
        value
            .to_str()
            .and_then(|s| ConnectionName::new(s).ok())
            .ok_or_else(|| {
                hidden_value_error(
                    cmd,
                    "invalid connection name; use 1 to 64 letters, digits, '_' or '-'",
                )
            })
    }
}

fn hidden_value_error(cmd: &clap::Command, what: &str) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::InvalidValue,
        format!("{what} (the value is not shown, in case it is a secret)\n"),
    )
    .with_cmd(cmd)
}

/// What `keys ...` prints for a command line clap rejects: clap's message with every argument
/// the user typed blanked out (`'<hidden>'`), except the words trademind itself defines. clap
/// quotes unexpected arguments (`unexpected argument 'sk-...' found`), and a key pasted into the
/// wrong place must not be echoed to the terminal or a CI log.
pub fn redact_rejected_args(message: &str, args: &[String]) -> String {
    let mut out = message.to_string();
    let mut typed: Vec<&str> = Vec::new();
    for arg in args.iter().skip(1) {
        typed.push(arg);
        if let Some((_, value)) = arg.split_once('=') {
            typed.push(value);
        }
    }
    // Longest first, so a value that contains a shorter argument is blanked whole.
    typed.sort_by_key(|a| std::cmp::Reverse(a.len()));
    for arg in typed {
        if arg.is_empty() || is_defined_word(arg) {
            continue;
        }
        for quote in ['\'', '"'] {
            out = out.replace(&format!("{quote}{arg}{quote}"), "'<hidden>'");
        }
    }
    out
}

fn is_defined_word(arg: &str) -> bool {
    const WORDS: &[&str] = &[
        "keys",
        "set",
        "list",
        "delete",
        "test",
        "help",
        "--help",
        "-h",
        "--connection",
        "--json",
        "--config",
        "--data-dir",
        "--log-level",
        "--version",
        "-V",
    ];
    WORDS.contains(&arg) || arg.parse::<SecretKind>().is_ok()
}

const NO_ARGUMENT_SECRETS: &str = "secrets are never accepted on the command line (they would be kept in shell history and shown by `ps`). Run `trademind keys set KIND` and type or paste at the hidden prompt, or pipe the value on stdin: `printf '%s\\n' \"$KEY\" | trademind keys set KIND` (Binance: key line, then secret line). If you just typed a real key, remove it from your shell history";

pub async fn run(cmd: KeysCommand, ctx: &Context) -> Result<()> {
    let secrets = ctx.secrets();
    match cmd {
        KeysCommand::Set(args) => set(args, ctx, &secrets).await,
        KeysCommand::List => list(ctx, &secrets).await,
        KeysCommand::Delete { kind, connection } => {
            delete(SecretId::new(kind, connection), ctx, &secrets).await
        }
        KeysCommand::Test { offline } => test(ctx, &secrets, offline).await,
    }
}

async fn set(args: SetArgs, ctx: &Context, secrets: &Secrets) -> Result<()> {
    if !args.stray.is_empty() || args.api_key_flag.is_some() || args.api_secret_flag.is_some() {
        return Err(UsageError(NO_ARGUMENT_SECRETS.to_string()).into());
    }
    let id = SecretId::new(args.kind, args.connection);
    let credential = read_credential(id.kind)?;
    // Check the format before opening anything, so a paste accident costs nothing.
    credential
        .validate_for(id.kind)
        .map_err(|e| UsageError(e.to_string()))?;
    let store = ctx.open_store()?;
    let backend = secrets.set(&id, credential).await?;
    let location = secrets.writable_location();
    let now = chrono::Utc::now().timestamp_millis();
    secret_entries::record(store.conn(), &id, backend, now)
        .context("the key is stored but its entry could not be recorded for `keys list`")?;
    #[derive(Serialize)]
    struct Stored {
        entry: String,
        backend: Backend,
        location: String,
        overridden_by_environment: bool,
    }
    tracing::info!(entry = %id, %backend, %location, "credential stored");
    let overridden = secrets.env_provides(&id);
    let out = Stored {
        entry: id.to_string(),
        backend,
        location: location.clone(),
        overridden_by_environment: overridden,
    };
    let session_only = backend == Backend::OsKeyring
        && ctx.settings().secrets.keyring == KeyringPlace::Session
        && cfg!(target_os = "linux");
    ctx.emit(&out, || {
        println!("stored {id} for this data dir in the {location}");
        if session_only {
            println!(
                "note: it is used only by commands run in this same session and ends with it \
                 (each `keyctl session -` starts a new one); set `keyring = \"persistent\"` \
                 under [secrets] to keep keys across sessions"
            );
        }
        if overridden {
            println!(
                "note: {} is set in the environment and takes precedence over the stored key",
                id.env_vars().api_key
            );
        }
    })
}

fn read_credential(kind: SecretKind) -> Result<Credential> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let name = kind_title(kind);
        let api_key = prompt_hidden(&format!("{name} API key"))?;
        if kind.has_api_secret() {
            let api_secret = prompt_hidden(&format!("{name} API secret"))?;
            Ok(Credential::KeyPair {
                api_key,
                api_secret,
            })
        } else {
            Ok(Credential::ApiKey(api_key))
        }
    } else {
        let mut input = zeroize::Zeroizing::new(String::new());
        // A key is at most a few hundred bytes; cap what a wrong pipe can make us hold.
        stdin
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut input)
            .context("cannot read the secret from stdin (is it UTF-8 text?)")?;
        credential_from_lines(kind, &input).map_err(|e| UsageError(e).into())
    }
}

/// The non-empty lines piped on stdin: one API key, or for Binance the key then the secret.
pub fn credential_from_lines(kind: SecretKind, input: &str) -> Result<Credential, String> {
    let lines: Vec<&str> = input
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    match (kind.has_api_secret(), lines.as_slice()) {
        (false, [key]) => Ok(Credential::ApiKey(Secret::new(*key))),
        (true, [key, secret]) => Ok(Credential::KeyPair {
            api_key: Secret::new(*key),
            api_secret: Secret::new(*secret),
        }),
        (false, other) => Err(format!(
            "expected exactly one non-empty line (the {kind} API key) on stdin, got {}",
            other.len()
        )),
        (true, other) => Err(format!(
            "expected two non-empty lines on stdin (the Binance API key, then the API secret), got {}",
            other.len()
        )),
    }
}

fn kind_title(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Binance => "Binance",
        SecretKind::Grok => "Grok (xAI)",
        SecretKind::Tavily => "Tavily",
        SecretKind::Resend => "Resend",
        SecretKind::Telegram => "Telegram bot",
    }
}

/// Read a line from the terminal without echoing it. Ctrl-C, Ctrl-D on an empty line and Esc
/// cancel; raw mode is always restored.
fn prompt_hidden(label: &str) -> Result<Secret> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

    struct RawMode;
    impl Drop for RawMode {
        fn drop(&mut self) {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }

    let mut stderr = std::io::stderr();
    write!(stderr, "{label} (input hidden): ")?;
    stderr.flush()?;
    crossterm::terminal::enable_raw_mode().context("cannot switch the terminal to hidden input")?;
    let raw = RawMode;
    let mut buf = zeroize::Zeroizing::new(String::new());
    let cancelled = loop {
        match event::read().context("cannot read from the terminal")? {
            Event::Key(key) if key.kind != KeyEventKind::Release => {
                let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
                match key.code {
                    KeyCode::Enter => break false,
                    KeyCode::Esc => break true,
                    KeyCode::Char('c') if ctrl => break true,
                    KeyCode::Char('d') if ctrl && buf.is_empty() => break true,
                    KeyCode::Char('u') if ctrl => buf.clear(),
                    KeyCode::Backspace => {
                        buf.pop();
                    }
                    KeyCode::Char(c) if !ctrl => buf.push(c),
                    _ => {}
                }
            }
            Event::Paste(text) => buf.push_str(&text),
            _ => {}
        }
    };
    drop(raw);
    writeln!(stderr)?;
    if cancelled {
        return Err(UsageError("cancelled; nothing was stored".into()).into());
    }
    Ok(Secret::new(buf.as_str()))
}

#[derive(Serialize)]
struct ListedEntry {
    kind: SecretKind,
    connection: String,
    /// Where the key a command would use comes from.
    backend: Backend,
    /// Where it lives, for people: the variables' names, or which keyring.
    location: String,
    /// RFC 3339, UTC, from this data dir's record; absent for environment variables.
    set_at: Option<String>,
    /// An environment variable supplies this entry and wins over any stored one.
    environment_override: bool,
}

/// What this data dir's lookup finds, entry by entry.
struct Survey {
    /// The entries a command would use, exactly.
    used: Vec<ListedEntry>,
    /// Recorded by `keys set` for this data dir, but the lookup does not find them (another
    /// session's keyring, expired, removed with keyctl).
    recorded_missing: Vec<(SecretId, Backend)>,
    /// Entries an older trademind stored without a data-dir scope: never used.
    legacy: Vec<SecretId>,
    /// Lookups that failed (an unusable keyring): the entry, the message, and whether `keys set`
    /// recorded it for this data dir.
    problems: Vec<(SecretId, String, bool)>,
}

/// Every entry this data dir could be asked for: the ones `keys set` recorded here, the
/// default connection of every kind, and the Binance connections registered with
/// `trademind connection add`; each is looked up through `Secrets::get`.
async fn survey(ctx: &Context, secrets: &Secrets) -> Result<Survey> {
    let store = ctx.open_store()?;
    let recorded = secret_entries::list(store.conn())?;
    let registered = strategies::list_connections(store.conn())?;
    drop(store);
    let mut candidates: Vec<SecretId> = recorded
        .iter()
        .filter_map(|e: &SecretEntry| {
            ConnectionName::new(&e.connection)
                .ok()
                .map(|c| SecretId::new(e.kind, c))
        })
        .chain(SecretKind::ALL.into_iter().map(SecretId::default_for))
        .chain(
            registered
                .iter()
                .filter(|c| c.exchange == "binance")
                .filter_map(|c| ConnectionName::new(&c.name).ok())
                .map(|name| SecretId::new(SecretKind::Binance, name)),
        )
        .collect();
    candidates.sort();
    candidates.dedup();
    let mut out = Survey {
        used: Vec::new(),
        recorded_missing: Vec::new(),
        legacy: Vec::new(),
        problems: Vec::new(),
    };
    for id in candidates {
        let record = recorded
            .iter()
            .find(|e| e.kind == id.kind && e.connection == id.connection.as_str());
        match secrets.get(&id).await {
            Ok(Some(found)) => out.used.push(ListedEntry {
                kind: id.kind,
                connection: id.connection.to_string(),
                backend: found.backend,
                location: found.location,
                set_at: record
                    .filter(|r| r.backend == found.backend)
                    .and_then(|r| chrono::DateTime::from_timestamp_millis(r.set_at))
                    .map(|t| t.to_rfc3339()),
                environment_override: found.backend == Backend::Environment,
            }),
            Ok(None) => {
                if let Some(r) = record {
                    out.recorded_missing.push((id.clone(), r.backend));
                }
                if secrets.unscoped_legacy_entry(&id).await {
                    out.legacy.push(id);
                }
            }
            Err(e) => out.problems.push((id, e.to_string(), record.is_some())),
        }
    }
    Ok(out)
}

impl Survey {
    /// What the user should know about entries that are not used, one line each.
    fn notes(&self, secrets: &Secrets) -> Vec<String> {
        let mut notes = Vec::new();
        for (id, backend) in &self.recorded_missing {
            notes.push(format!(
                "{id} was set for this data dir but is not in the {} any more{}; store it again with `trademind keys set {} --connection {}`",
                if *backend == Backend::OsKeyring { secrets.writable_location() } else { backend.to_string() },
                if *backend == Backend::OsKeyring {
                    " (a session keyring's keys end with the session that stored them)"
                } else {
                    ""
                },
                id.kind,
                id.connection
            ));
        }
        for id in &self.legacy {
            notes.push(format!(
                "{id}: the keyring holds a key an older trademind stored for every data dir at once; it is not used. Store it again with `trademind keys set {} --connection {}`, then remove the old one (`keyctl purge -s user {}`)",
                id.kind,
                id.connection,
                crate::secrets::KeyringStore::legacy_description(id)
            ));
        }
        // One unusable keyring fails every lookup the same way: say it once.
        let mut seen: Vec<&str> = Vec::new();
        for (id, problem, _) in &self.problems {
            if !seen.contains(&problem.as_str()) {
                seen.push(problem);
                notes.push(format!("{id}: {problem}"));
            }
        }
        notes
    }
}

async fn list(ctx: &Context, secrets: &Secrets) -> Result<()> {
    let survey = survey(ctx, secrets).await?;
    let notes = survey.notes(secrets);
    for note in &notes {
        tracing::debug!("{note}");
    }
    let entries = &survey.used;
    ctx.emit(entries, || {
        if entries.is_empty() {
            println!(
                "no keys for this data dir; add one with `trademind keys set binance|grok|tavily|resend|telegram`"
            );
        } else {
            println!(
                "{:<8} {:<16} {:<26} LOCATION",
                "KIND", "CONNECTION", "SET AT"
            );
            for e in entries {
                println!(
                    "{:<8} {:<16} {:<26} {}",
                    e.kind.as_str(),
                    e.connection,
                    e.set_at.as_deref().unwrap_or("-"),
                    e.location
                );
            }
        }
    })?;
    // Notes go to stderr so that `--json` output stays one document.
    for note in &notes {
        eprintln!("note: {note}");
    }
    Ok(())
}

async fn delete(id: SecretId, ctx: &Context, secrets: &Secrets) -> Result<()> {
    let store = ctx.open_store()?;
    let removed_secret = secrets.delete(&id).await?;
    let removed_row = secret_entries::remove(store.conn(), &id)?;
    #[derive(Serialize)]
    struct Deleted {
        entry: String,
        deleted: bool,
    }
    let deleted = removed_secret || removed_row;
    tracing::info!(entry = %id, deleted, "credential delete requested");
    ctx.emit(
        &Deleted {
            entry: id.to_string(),
            deleted,
        },
        || {
            if deleted {
                println!("deleted {id}");
            } else {
                println!("nothing stored for {id}");
            }
            if secrets.env_provides(&id) {
                println!(
                    "note: {} is still set in the environment",
                    id.env_vars().api_key
                );
            }
        },
    )
}

#[derive(Serialize)]
struct TestResult {
    entry: String,
    backend: Backend,
    /// The stored value could be read and is well formed.
    readable: bool,
    /// ok, rejected, unreachable or failed; absent with `--offline`.
    status: Option<KeyStatus>,
    endpoint: Option<String>,
    problem: Option<String>,
    detail: Option<String>,
    /// What to fix although the key works (e.g. a Binance key allowed to withdraw).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// The endpoints `keys test` asks, from the configuration; Binance's environment is the
/// connection's (testnet or production) when the connection is registered, else the config's.
fn endpoints_for(
    settings: &crate::config::Settings,
    connections: &[strategies::ConnectionRow],
    connection: &str,
) -> Endpoints {
    let mut binance = settings.exchange.binance.clone();
    if let Some(row) = connections
        .iter()
        .find(|r| r.name == connection && r.exchange == "binance")
    {
        binance.environment = if row.is_testnet {
            BinanceEnvironment::Testnet
        } else {
            BinanceEnvironment::Production
        };
    }
    Endpoints {
        binance,
        llm: settings.llm.clone(),
        tavily: settings.llm.tavily.clone(),
        resend_url: settings.notifications.base_url.clone(),
        resend_timeout: std::time::Duration::from_secs(settings.notifications.timeout_seconds),
        telegram_url: settings.telegram.base_url.clone(),
    }
}

async fn test(ctx: &Context, secrets: &Secrets, offline: bool) -> Result<()> {
    let survey = survey(ctx, secrets).await?;
    let connections = strategies::list_connections(ctx.open_store()?.conn())?;
    // The entries a command would use, then those recorded here that it would not find.
    let entries: Vec<(SecretId, Backend)> = survey
        .used
        .iter()
        .map(|e| {
            Ok((
                SecretId::new(e.kind, ConnectionName::new(&e.connection)?),
                e.backend,
            ))
        })
        .chain(survey.recorded_missing.iter().cloned().map(Ok))
        .chain(
            survey
                .problems
                .iter()
                .filter(|(_, _, recorded)| *recorded)
                .map(|(id, _, _)| Ok((id.clone(), secrets.writable_backend()))),
        )
        .collect::<Result<_, crate::secrets::SecretError>>()?;
    let mut results = Vec::with_capacity(entries.len());
    for (id, backend) in entries {
        let mut result = TestResult {
            entry: id.to_string(),
            backend,
            readable: false,
            status: None,
            endpoint: None,
            problem: None,
            detail: None,
            warnings: Vec::new(),
        };
        let credential = match secrets.get(&id).await {
            Ok(Some(found)) => {
                result.backend = found.backend;
                match found.credential.validate_for(id.kind) {
                    Ok(()) => Some(found.credential),
                    Err(err) => {
                        result.problem = Some(err.to_string());
                        None
                    }
                }
            }
            Ok(None) => {
                result.problem = Some(format!(
                    "set for this data dir but not found in the {}; set it again with `trademind keys set {} --connection {}`",
                    secrets.writable_location(),
                    id.kind,
                    id.connection
                ));
                None
            }
            Err(err) => {
                result.problem = Some(err.to_string());
                None
            }
        };
        match credential {
            Some(credential) => {
                result.readable = true;
                if !offline {
                    let at = endpoints_for(ctx.settings(), &connections, id.connection.as_str());
                    let checked = check_key(id.kind, &credential, &at).await;
                    tracing::info!(entry = %id, status = checked.status.as_str(), endpoint = %checked.endpoint, "key checked");
                    for w in &checked.warnings {
                        tracing::warn!(entry = %id, warning = %w, "key permission");
                    }
                    result.warnings = checked.warnings;
                    result.status = Some(checked.status);
                    result.endpoint = Some(checked.endpoint);
                    result.detail = Some(checked.detail);
                }
            }
            None => result.status = (!offline).then_some(KeyStatus::Failed),
        }
        results.push(result);
    }
    let failed = results
        .iter()
        .filter(|r| !r.readable || r.status.is_some_and(|s| s != KeyStatus::Ok))
        .count();
    let failure =
        (failed > 0).then(|| format!("{failed} of {} keys cannot be used", results.len()));
    ctx.emit_or_fail(
        &results,
        || {
            if results.is_empty() {
                println!("no keys stored; nothing to test");
            }
            for r in &results {
                match (&r.problem, r.status) {
                    (Some(p), _) => println!("FAILED       {}: {p}", r.entry),
                    (None, None) => println!("readable     {} ({})", r.entry, r.backend),
                    (None, Some(status)) => println!(
                        "{:<12} {} ({}) {}: {}",
                        status.as_str(),
                        r.entry,
                        r.backend,
                        r.endpoint.as_deref().unwrap_or("-"),
                        r.detail.as_deref().unwrap_or("")
                    ),
                }
                for w in &r.warnings {
                    println!("  warning: {w}");
                }
            }
            if offline {
                println!(
                    "note: --offline only checks that each key can be read back and is well formed"
                );
            }
        },
        failure,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_arguments_are_blanked_but_defined_words_kept() {
        let args: Vec<String> = ["trademind", "keys", "set", "grok", "--key=sk-123", "a"]
            .map(String::from)
            .to_vec();
        let shown = redact_rejected_args(
            "error: unexpected argument 'sk-123' found near 'grok' and 'a' in 'keys'",
            &args,
        );
        assert_eq!(
            shown,
            "error: unexpected argument '<hidden>' found near 'grok' and '<hidden>' in 'keys'"
        );
    }

    #[test]
    fn one_piped_line_is_a_single_key_and_trailing_newlines_are_dropped() {
        let c = credential_from_lines(SecretKind::Grok, "xai-123\r\n\n").unwrap();
        assert_eq!(c.api_key().expose(), "xai-123");
    }

    #[test]
    fn binance_reads_key_then_secret_lines() {
        let c = credential_from_lines(SecretKind::Binance, "k\ns\n").unwrap();
        assert_eq!(c.api_key().expose(), "k");
        assert_eq!(c.api_secret().unwrap().expose(), "s");
    }

    #[test]
    fn wrong_line_counts_are_refused_without_quoting_the_input() {
        let err = credential_from_lines(SecretKind::Binance, "only-key\n").unwrap_err();
        assert!(err.contains("got 1") && !err.contains("only-key"), "{err}");
        let err = credential_from_lines(SecretKind::Tavily, "a\nb\n").unwrap_err();
        assert!(err.contains("got 2"), "{err}");
        assert!(credential_from_lines(SecretKind::Resend, "\n\n").is_err());
    }
}
