//! What trading needs, opened from the configuration: the exchange a connection names (the
//! paper exchange, or Binance with its key pair from the environment or the keyring), the alert
//! mailer, and `trading_service`, the one constructor of the `TradingService` the daemon, the
//! TUI and the trading commands trade through.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;

use crate::app::bus::EventBus;
use crate::app::trading::{TradingDeps, TradingService};
use crate::config::Settings;
use crate::config::endpoints::BinanceTarget;
use crate::domain::trading::TradingMode;
use crate::domain::trading::mode::mode_of;
use crate::secrets::{ConnectionName, SecretError, SecretId, SecretKind, Secrets};
use crate::services::exchange::ExchangeError;
use crate::services::exchange::any::AnyExchange;
use crate::services::exchange::binance::client::BinanceEnvironment;
use crate::services::exchange::binance::{BinanceClient, Credentials};
use crate::services::exchange::paper::PaperExchange;
use crate::services::notification::{NotificationConfig, ResendClient, ResendError};
use crate::store::{Store, StoreError, strategies};

/// The connection name that always means the built-in paper exchange.
pub const PAPER: &str = "paper";

#[derive(Debug, thiserror::Error)]
pub enum VenueError {
    #[error("no connection named {0:?} (see `trademind connection list`)")]
    UnknownConnection(String),
    #[error("{0}")]
    BadConnectionName(String),
    #[error("trading.paper_starting_balance {0:?} is not a number")]
    BadStartingBalance(String),
    #[error(
        "connection {0:?} needs an API key: `trademind keys set binance --connection {0}` (or set {1} and {2}){3}"
    )]
    MissingKey(String, String, String, String),
    #[error(
        "strategy {strategy:?} names connection #{id}, which no longer exists; give it one with `trademind strategy add ... --connection NAME` (or remove it)"
    )]
    StrategyConnectionGone { strategy: String, id: i64 },
    #[error(
        "strategy {strategy:?} trades on connection {own:?}, not {asked:?}: a strategy never reaches an exchange it was not given"
    )]
    NotTheStrategysConnection {
        strategy: String,
        own: String,
        asked: String,
    },
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl VenueError {
    /// Whether the user's configuration or arguments are at fault (the CLI exits 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            VenueError::UnknownConnection(_)
                | VenueError::StrategyConnectionGone { .. }
                | VenueError::NotTheStrategysConnection { .. }
                | VenueError::BadConnectionName(_)
                | VenueError::BadStartingBalance(_)
                | VenueError::MissingKey(..)
        )
    }
}

/// The connection `strategy` trades on: the one it was added with, else the paper exchange.
/// Never `trading.connection`: a strategy must not reach an exchange it was not given (issue
/// #19: a strategy added without a connection traded on the configured Binance account).
pub fn strategy_connection(
    conn: &rusqlite::Connection,
    strategy: &strategies::StrategyRow,
) -> Result<String, VenueError> {
    let Some(id) = strategy.connection_id else {
        return Ok(PAPER.to_string());
    };
    strategies::list_connections(conn)?
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.name)
        .ok_or_else(|| VenueError::StrategyConnectionGone {
            strategy: strategy.name.clone(),
            id,
        })
}

/// The connection a command for `strategy` trades on: the strategy's own; `--connection`
/// may name it again but never another one.
pub fn connection_for_command(
    conn: &rusqlite::Connection,
    strategy: &strategies::StrategyRow,
    asked: Option<&str>,
) -> Result<String, VenueError> {
    let own = strategy_connection(conn, strategy)?;
    match asked {
        Some(asked) if asked != own => Err(VenueError::NotTheStrategysConnection {
            strategy: strategy.name.clone(),
            own,
            asked: asked.to_string(),
        }),
        _ => Ok(own),
    }
}

/// Where connection `connection` (else `trading.connection`) reads market data from: a
/// Binance connection's own address or environment; production for the paper exchange, which
/// trades at real prices. `Settings::binance_endpoints` puts `exchange.binance.base_url` after
/// the connection's own address and before the environment's hosts.
pub fn market_environment(
    settings: &Settings,
    connection: Option<&str>,
) -> Result<(String, BinanceTarget), VenueError> {
    let name = connection
        .unwrap_or(&settings.trading.connection)
        .to_string();
    if name == PAPER {
        return Ok((name, BinanceEnvironment::Production.into()));
    }
    let row = {
        let store = Store::open_in(&settings.data_dir())?;
        strategies::list_connections(store.conn())?
    }
    .into_iter()
    .find(|r| r.name == name)
    .ok_or_else(|| VenueError::UnknownConnection(name.clone()))?;
    let target = if row.exchange == PAPER {
        BinanceEnvironment::Production.into()
    } else {
        BinanceTarget {
            environment: crate::config::endpoints::environment_of(row.is_testnet),
            base_url: row.base_url,
        }
    };
    Ok((name, target))
}

/// An exchange opened for a connection.
pub struct ConnectedExchange {
    /// The connection's name (also the account name in the `orders` table).
    pub connection: String,
    pub exchange: AnyExchange,
    /// The mode the live guard checks before every order.
    pub mode: TradingMode,
    /// Whether signed requests can be made (always true on paper).
    pub has_credentials: bool,
}

impl ConnectedExchange {
    /// Refuse a Binance connection without a key pair: every trading request is signed.
    pub fn require_credentials(self) -> Result<ConnectedExchange, VenueError> {
        if self.has_credentials {
            return Ok(self);
        }
        let vars = binance_secret_id(&self.connection)?.env_vars();
        Err(VenueError::MissingKey(
            self.connection,
            vars.api_key,
            vars.api_secret.unwrap_or_default(),
            crate::secrets::unreadable_keyring_note(),
        ))
    }
}

/// The secret entry of a connection's Binance key pair.
pub fn binance_secret_id(connection: &str) -> Result<SecretId, VenueError> {
    let name = ConnectionName::new(connection)
        .map_err(|e| VenueError::BadConnectionName(e.to_string()))?;
    Ok(SecretId::new(SecretKind::Binance, name))
}

fn open_paper(settings: &Settings, account: &str) -> Result<AnyExchange, VenueError> {
    let mut config = settings.exchange.paper.clone();
    let raw = &settings.trading.paper_starting_balance;
    let start: Decimal = raw
        .parse()
        .map_err(|_| VenueError::BadStartingBalance(raw.clone()))?;
    config.initial_balances = [("USDT".to_string(), start)].into_iter().collect();
    let store = Store::open_in(&settings.data_dir())?;
    Ok(AnyExchange::Paper(Box::new(PaperExchange::open(
        store, account, &config,
    )?)))
}

/// The exchange of `connection` (else `trading.connection`): the built-in paper exchange for
/// `paper` or a paper connection; Binance (testnet or production, as the connection row says)
/// with the connection's key pair when one is stored. Without a key pair the client still
/// answers public requests; `has_credentials` says so.
pub async fn open_exchange(
    settings: &Settings,
    secrets: &Secrets,
    connection: Option<&str>,
) -> Result<ConnectedExchange, VenueError> {
    let name = connection
        .unwrap_or(&settings.trading.connection)
        .to_string();
    let paper = |name: String| -> Result<ConnectedExchange, VenueError> {
        Ok(ConnectedExchange {
            exchange: open_paper(settings, &name)?,
            connection: name,
            mode: TradingMode::Paper,
            has_credentials: true,
        })
    };
    if name == PAPER {
        return paper(name);
    }
    let row = {
        let store = Store::open_in(&settings.data_dir())?;
        strategies::list_connections(store.conn())?
    }
    .into_iter()
    .find(|r| r.name == name)
    .ok_or_else(|| VenueError::UnknownConnection(name.clone()))?;
    if row.exchange == PAPER {
        return paper(name);
    }
    let mut config = settings.exchange.binance.clone();
    config.environment = crate::config::endpoints::environment_of(row.is_testnet);
    // The connection's own address wins over exchange.binance.base_url.
    if let Some(url) = &row.base_url {
        config.base_url = Some(url.clone());
    }
    let id = binance_secret_id(&name)?;
    // Public endpoints work without a key; signed ones then fail with the fix named.
    let credentials = crate::secrets::optional(secrets.key_pair(&id).await)?
        .map(|(key, secret)| Credentials::new(key.expose(), secret.expose()));
    let has_credentials = credentials.is_some();
    Ok(ConnectedExchange {
        exchange: AnyExchange::Binance(Box::new(BinanceClient::new(config, credentials)?)),
        connection: name,
        mode: mode_of(false, row.is_testnet),
        has_credentials,
    })
}

/// The exchange a trading command, the daemon or the TUI trades on (`connection`, else
/// `trading.connection`); a Binance connection without a key pair is refused here.
pub async fn open_for_trading(
    settings: &Settings,
    secrets: &Secrets,
    connection: Option<&str>,
) -> Result<ConnectedExchange, VenueError> {
    open_exchange(settings, secrets, connection)
        .await?
        .require_credentials()
}

/// The Resend client for alerts: `None` (alerts are only recorded) when notifications are off
/// or unaddressed, or no key is stored; a keyring problem is a warning, never a refusal.
pub async fn mailer(config: &NotificationConfig, secrets: &Secrets) -> Option<ResendClient> {
    if !config.enabled || config.from.trim().is_empty() || config.to.is_empty() {
        return None;
    }
    let key = match secrets.api_key(SecretKind::Resend).await {
        Ok(found) => found?,
        Err(e) => {
            tracing::warn!("alerts will not be mailed: {e}");
            return None;
        }
    };
    resend_client(config, key.expose())
        .map_err(|e| tracing::warn!("alerts will not be mailed: {e}"))
        .ok()
}

/// A Resend client as the notification settings configure it.
pub fn resend_client(config: &NotificationConfig, key: &str) -> Result<ResendClient, ResendError> {
    ResendClient::new(
        &config.base_url,
        key,
        Duration::from_secs(config.timeout_seconds),
    )
}

/// The trading service on `connection` (else `trading.connection`), over `store`, publishing
/// on `bus`, mailing alerts when notifications are set up. Not yet reconciled: the caller runs
/// `reconcile` before trading.
pub async fn trading_service(
    settings: Arc<Settings>,
    store: Arc<Mutex<Store>>,
    connection: Option<&str>,
    bus: EventBus,
) -> Result<TradingService<AnyExchange>, VenueError> {
    let secrets = Secrets::from_config(&settings.secrets, &settings.data_dir());
    let venue = open_for_trading(&settings, &secrets, connection).await?;
    let mailer = mailer(&settings.notifications, &secrets).await;
    let telegram = telegram_client(&settings.telegram, &secrets).await;
    let service = TradingService::new(TradingDeps {
        exchange: Arc::new(venue.exchange),
        store,
        connection: venue.connection,
        mode: venue.mode,
        settings: settings.clone(),
        bus,
        mailer,
    });
    Ok(match telegram {
        Some(client) => service.with_alert_channel(Arc::new(
            crate::services::notification::telegram_channel::TelegramChannel::new(
                client,
                &settings.telegram,
            ),
        )),
        None => service,
    })
}

/// The Telegram bot's client: `None` when `[telegram]` is off or no token is stored
/// (`trademind keys set telegram`); a keyring problem is a warning, never a refusal.
pub async fn telegram_client(
    config: &crate::services::telegram::TelegramConfig,
    secrets: &Secrets,
) -> Option<crate::services::telegram::TelegramClient> {
    if !config.enabled {
        return None;
    }
    let token = match secrets.api_key(SecretKind::Telegram).await {
        Ok(Some(token)) => token,
        Ok(None) => {
            tracing::warn!(
                "telegram is enabled but no token is stored: `trademind keys set telegram`"
            );
            return None;
        }
        Err(e) => {
            tracing::warn!("the Telegram bot is off: {e}");
            return None;
        }
    };
    crate::services::telegram::TelegramClient::new(&config.base_url, token.expose())
        .map_err(|e| tracing::warn!("the Telegram bot is off: {e}"))
        .ok()
}
