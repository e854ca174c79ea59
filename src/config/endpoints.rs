//! Where a Binance connection's traffic goes: its REST API, its combined market streams and its
//! WebSocket API, all derived from ONE address.
//!
//! The address is the connection's own `base_url` (`connection add NAME --base-url URL`) when it
//! has one, else `exchange.binance.base_url` when set (a fake exchange, a proxy: everything on
//! that one host, in Binance's own path layout), else the hosts of the connection's environment
//! as Binance documents them (production or the spot testnet). The few explicit overrides
//! (`stream.ws_base_url`, `stream.rest_base_url`, `stream.ws_api_url`,
//! `market_data.rest_base_url`) are empty by default and replace a single endpoint when set.

use crate::services::exchange::binance::client::BinanceEnvironment;
use crate::services::market_stream::StreamConfig;

use super::Settings;

/// The endpoints of one Binance deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BinanceEndpoints {
    /// REST API base (orders, account, klines, depth), without a trailing slash.
    pub rest: String,
    /// WebSocket base of the combined market streams (`<streams>/stream?streams=..`).
    pub streams: String,
    /// The WebSocket API endpoint (user-data stream subscription).
    pub ws_api: String,
}

/// Production hosts (Binance spot API docs: "General API Information", "WebSocket Streams",
/// "WebSocket API").
pub const PRODUCTION_REST: &str = "https://api.binance.com";
pub const PRODUCTION_STREAMS: &str = "wss://stream.binance.com:9443";
pub const PRODUCTION_WS_API: &str = "wss://ws-api.binance.com:443/ws-api/v3";
/// Spot testnet hosts (testnet.binance.vision).
pub const TESTNET_REST: &str = "https://testnet.binance.vision";
pub const TESTNET_STREAMS: &str = "wss://stream.testnet.binance.vision";
pub const TESTNET_WS_API: &str = "wss://ws-api.testnet.binance.vision/ws-api/v3";

/// The path of the WebSocket API under a host, as on Binance.
const WS_API_PATH: &str = "/ws-api/v3";

impl BinanceEndpoints {
    /// The hosts Binance documents for `environment`.
    pub fn of_environment(environment: BinanceEnvironment) -> BinanceEndpoints {
        let (rest, streams, ws_api) = match environment {
            BinanceEnvironment::Production => {
                (PRODUCTION_REST, PRODUCTION_STREAMS, PRODUCTION_WS_API)
            }
            BinanceEnvironment::Testnet => (TESTNET_REST, TESTNET_STREAMS, TESTNET_WS_API),
        };
        BinanceEndpoints {
            rest: rest.into(),
            streams: streams.into(),
            ws_api: ws_api.into(),
        }
    }

    /// Everything on the host of `base_url` (`http://127.0.0.1:9400`): REST there, the market
    /// streams at `ws://127.0.0.1:9400/stream?..`, the WebSocket API at
    /// `ws://127.0.0.1:9400/ws-api/v3` (`https` gives `wss`).
    pub fn on_one_host(base_url: &str) -> BinanceEndpoints {
        let rest = base_url.trim_end_matches('/').to_string();
        let ws = match rest.split_once("://") {
            Some(("https", host)) => format!("wss://{host}"),
            Some((_, host)) => format!("ws://{host}"),
            None => format!("ws://{rest}"),
        };
        BinanceEndpoints {
            ws_api: format!("{ws}{WS_API_PATH}"),
            streams: ws,
            rest,
        }
    }
}

/// Where one connection's traffic goes: its environment, and its own address if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinanceTarget {
    pub environment: BinanceEnvironment,
    /// The connection's `base_url`, ahead of `exchange.binance.base_url`.
    pub base_url: Option<String>,
}

impl From<BinanceEnvironment> for BinanceTarget {
    /// A deployment without an address of its own.
    fn from(environment: BinanceEnvironment) -> BinanceTarget {
        BinanceTarget {
            environment,
            base_url: None,
        }
    }
}

/// Which Binance deployment a connection trades on: testnet or production by its row; the paper
/// exchange reads real prices, so its market data comes from production.
pub fn environment_of(is_testnet: bool) -> BinanceEnvironment {
    if is_testnet {
        BinanceEnvironment::Testnet
    } else {
        BinanceEnvironment::Production
    }
}

impl Settings {
    /// The endpoints of a Binance connection: its own `base_url`, else
    /// `exchange.binance.base_url` if set, else its environment's hosts; then the explicit
    /// stream overrides.
    pub fn binance_endpoints(&self, target: impl Into<BinanceTarget>) -> BinanceEndpoints {
        let target = target.into();
        let address = target
            .base_url
            .as_ref()
            .or(self.exchange.binance.base_url.as_ref());
        let mut endpoints = match address {
            Some(url) => BinanceEndpoints::on_one_host(url),
            None => BinanceEndpoints::of_environment(target.environment),
        };
        let overrides = [
            (&self.stream.ws_base_url, &mut endpoints.streams),
            (&self.stream.ws_api_url, &mut endpoints.ws_api),
        ];
        for (value, slot) in overrides {
            if !value.trim().is_empty() {
                *slot = value.trim_end_matches('/').to_string();
            }
        }
        endpoints
    }

    /// The `[stream]` settings with a connection's endpoints filled in: what the market streams,
    /// the depth snapshots, the back-fill and the user-data stream connect to.
    pub fn stream_for(&self, target: impl Into<BinanceTarget>) -> StreamConfig {
        let endpoints = self.binance_endpoints(target);
        let mut config = self.stream.clone();
        if config.rest_base_url.trim().is_empty() {
            config.rest_base_url = endpoints.rest;
        }
        config.ws_base_url = endpoints.streams;
        config.ws_api_url = endpoints.ws_api;
        config
    }

    /// The `[market_data]` settings with the connection's REST endpoint filled in (what
    /// `data fetch` downloads klines from), unless `market_data.rest_base_url` overrides it.
    pub fn market_data_for(
        &self,
        target: impl Into<BinanceTarget>,
    ) -> crate::services::market_data::MarketDataConfig {
        let mut config = self.market_data.clone();
        if config.rest_base_url.trim().is_empty() {
            config.rest_base_url = self.binance_endpoints(target).rest;
        }
        config
    }
}

/// Keys that no longer exist, with what replaces them: a config written for an older version
/// fails with the new key named instead of a bare "unknown field".
pub const REMOVED_KEYS: &[(&str, &str)] = &[
    (
        "exchange.binance.production_url",
        "set exchange.binance.base_url (one address for REST, streams and the WebSocket API), or leave it unset for Binance's own hosts",
    ),
    (
        "exchange.binance.testnet_url",
        "set exchange.binance.base_url (one address for REST, streams and the WebSocket API), or leave it unset for Binance's own hosts",
    ),
    (
        "stream.testnet_ws_base_url",
        "a connection's endpoints follow its environment or exchange.binance.base_url; stream.ws_base_url overrides the streams of every connection",
    ),
    (
        "stream.testnet_rest_base_url",
        "a connection's endpoints follow its environment or exchange.binance.base_url; stream.rest_base_url overrides the REST snapshots of every connection",
    ),
    (
        "stream.testnet_ws_api_url",
        "a connection's endpoints follow its environment or exchange.binance.base_url; stream.ws_api_url overrides the WebSocket API of every connection",
    ),
];

/// The replacement of a removed key, if `dotted` is one.
pub fn removed_key(dotted: &str) -> Option<&'static str> {
    REMOVED_KEYS
        .iter()
        .find(|(k, _)| *k == dotted)
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_s_own_address_wins_over_the_setting_and_the_environment() {
        let mut s = Settings::default();
        s.exchange.binance.base_url = Some("http://127.0.0.1:9400".into());
        let own = BinanceTarget {
            environment: BinanceEnvironment::Testnet,
            base_url: Some("http://127.0.0.1:9500".into()),
        };
        let t = s.stream_for(own.clone());
        assert_eq!(
            (
                t.rest_base_url.as_str(),
                t.ws_base_url.as_str(),
                t.ws_api_url.as_str()
            ),
            (
                "http://127.0.0.1:9500",
                "ws://127.0.0.1:9500",
                "ws://127.0.0.1:9500/ws-api/v3"
            )
        );
        assert_eq!(
            s.market_data_for(own).rest_base_url,
            "http://127.0.0.1:9500"
        );
        // Without its own: the setting; without the setting: the environment's hosts.
        assert_eq!(
            s.stream_for(BinanceEnvironment::Testnet).rest_base_url,
            "http://127.0.0.1:9400"
        );
        s.exchange.binance.base_url = None;
        assert_eq!(
            s.stream_for(BinanceEnvironment::Testnet).rest_base_url,
            TESTNET_REST
        );
    }

    #[test]
    fn one_base_url_gives_rest_streams_and_ws_api_on_the_same_host() {
        let e = BinanceEndpoints::on_one_host("http://127.0.0.1:9400/");
        assert_eq!(e.rest, "http://127.0.0.1:9400");
        assert_eq!(e.streams, "ws://127.0.0.1:9400");
        assert_eq!(e.ws_api, "ws://127.0.0.1:9400/ws-api/v3");
        let e = BinanceEndpoints::on_one_host("https://proxy.example");
        assert_eq!(e.streams, "wss://proxy.example");
        assert_eq!(e.ws_api, "wss://proxy.example/ws-api/v3");
    }

    #[test]
    fn a_testnet_connection_uses_every_testnet_host_and_production_every_production_host() {
        let s = Settings::default();
        let t = s.stream_for(BinanceEnvironment::Testnet);
        assert_eq!(
            (
                t.rest_base_url.as_str(),
                t.ws_base_url.as_str(),
                t.ws_api_url.as_str()
            ),
            (TESTNET_REST, TESTNET_STREAMS, TESTNET_WS_API)
        );
        let p = s.stream_for(BinanceEnvironment::Production);
        assert_eq!(
            (
                p.rest_base_url.as_str(),
                p.ws_base_url.as_str(),
                p.ws_api_url.as_str()
            ),
            (PRODUCTION_REST, PRODUCTION_STREAMS, PRODUCTION_WS_API)
        );
        assert_eq!(
            s.market_data_for(BinanceEnvironment::Testnet).rest_base_url,
            TESTNET_REST
        );
    }

    #[test]
    fn base_url_points_every_endpoint_at_one_host_and_overrides_replace_one_each() {
        let mut s = Settings::default();
        s.exchange.binance.base_url = Some("http://127.0.0.1:9400".into());
        for env in [BinanceEnvironment::Testnet, BinanceEnvironment::Production] {
            let c = s.stream_for(env);
            assert_eq!(c.rest_base_url, "http://127.0.0.1:9400");
            assert_eq!(c.ws_base_url, "ws://127.0.0.1:9400");
            assert_eq!(c.ws_api_url, "ws://127.0.0.1:9400/ws-api/v3");
            assert_eq!(
                s.market_data_for(env).rest_base_url,
                "http://127.0.0.1:9400"
            );
        }
        s.stream.ws_base_url = "ws://127.0.0.1:1".into();
        s.market_data.rest_base_url = "http://127.0.0.1:2".into();
        let c = s.stream_for(BinanceEnvironment::Testnet);
        assert_eq!(c.ws_base_url, "ws://127.0.0.1:1");
        assert_eq!(c.ws_api_url, "ws://127.0.0.1:9400/ws-api/v3");
        assert_eq!(
            s.market_data_for(BinanceEnvironment::Testnet).rest_base_url,
            "http://127.0.0.1:2"
        );
    }
}
