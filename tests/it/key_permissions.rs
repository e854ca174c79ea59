//! `keys test` on a production Binance key also reads what the key may do
//! (`GET /sapi/v1/account/apiRestrictions`, signed): a key allowed to withdraw or transfer, or
//! not allowed to trade, works but is reported with a warning. The spot testnet has no `/sapi`
//! endpoints, so a testnet key's permissions are not asked.

use std::time::Duration;
use trademind::app::key_check::{Endpoints, KeyStatus, check_key};
use trademind::secrets::{Credential, Secret, SecretKind};
use trademind::services::exchange::binance::BinanceConfig;
use trademind::services::exchange::binance::client::BinanceEnvironment;
use trademind::services::llm::{LlmConfig, TavilyConfig};
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, KeyPermissions};

const PERMISSIONS: &str = "GET /sapi/v1/account/apiRestrictions";

fn endpoints(fake: &FakeBinance, environment: BinanceEnvironment) -> Endpoints {
    Endpoints {
        binance: BinanceConfig {
            environment,
            base_url: Some(fake.base_url()),
            request_timeout_ms: 2_000,
            ..BinanceConfig::default()
        },
        llm: LlmConfig::default(),
        tavily: TavilyConfig::default(),
        resend_url: "http://127.0.0.1:9".into(),
        resend_timeout: Duration::from_secs(1),
        telegram_url: "http://127.0.0.1:9".into(),
    }
}

fn pair(key: &str, secret: &str) -> Credential {
    Credential::KeyPair {
        api_key: Secret::new(key),
        api_secret: Secret::new(secret),
    }
}

#[tokio::test]
async fn a_production_key_that_can_withdraw_or_cannot_trade_is_flagged() {
    let config = FakeConfig::default();
    let good = pair(&config.api_key, &config.api_secret);
    let fake = FakeBinance::start(config.clone()).await.unwrap();
    let at = endpoints(&fake, BinanceEnvironment::Production);

    // A well-made trading key: no warning.
    let checked = check_key(SecretKind::Binance, &good, &at).await;
    assert_eq!(checked.status, KeyStatus::Ok, "{checked:?}");
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    assert_eq!(fake.requests(PERMISSIONS), 1);

    // Allowed to withdraw and transfer: it works, and says what to turn off.
    fake.set_key_permissions(KeyPermissions {
        withdrawals: true,
        internal_transfer: true,
        ..KeyPermissions::default()
    });
    let checked = check_key(SecretKind::Binance, &good, &at).await;
    assert_eq!(checked.status, KeyStatus::Ok);
    assert_eq!(checked.warnings.len(), 2, "{:?}", checked.warnings);
    assert!(checked.warnings[0].contains("withdrawals are enabled"));
    assert!(checked.warnings[1].contains("transfers are enabled"));
    let json = serde_json::to_value(&checked).unwrap();
    assert_eq!(json["warnings"].as_array().unwrap().len(), 2);

    // Not allowed to trade: every order would be refused.
    fake.set_key_permissions(KeyPermissions {
        spot_trading: false,
        ..KeyPermissions::default()
    });
    let checked = check_key(SecretKind::Binance, &good, &at).await;
    assert_eq!(checked.warnings.len(), 1);
    assert!(checked.warnings[0].contains("spot trading is not enabled"));

    // A wrong secret is rejected before any permission is asked.
    let asked = fake.requests(PERMISSIONS);
    let checked = check_key(SecretKind::Binance, &pair(&config.api_key, "wrong"), &at).await;
    assert_eq!(checked.status, KeyStatus::Rejected);
    assert_eq!(fake.requests(PERMISSIONS), asked);
}

#[tokio::test]
async fn a_testnet_key_is_not_asked_for_permissions_the_testnet_does_not_have() {
    let config = FakeConfig::default();
    let good = pair(&config.api_key, &config.api_secret);
    let fake = FakeBinance::start(config).await.unwrap();
    fake.set_key_permissions(KeyPermissions {
        withdrawals: true,
        ..KeyPermissions::default()
    });
    let checked = check_key(
        SecretKind::Binance,
        &good,
        &endpoints(&fake, BinanceEnvironment::Testnet),
    )
    .await;
    assert_eq!(checked.status, KeyStatus::Ok);
    assert!(checked.warnings.is_empty());
    assert_eq!(fake.requests(PERMISSIONS), 0);
}
