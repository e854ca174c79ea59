//! Start-up reconciliation: every symbol with trading work is brought in line with the exchange
//! through the same steps a running service takes (protection legs followed, then the settle
//! step), so an entry that filled while we were down — or just before a crash, before its
//! protection — is booked and protected from the stop and target stored with it. What cannot be
//! put right keeps trading paused and is alerted. The exchange's balance of each base asset is
//! compared with the sum of every book's positions: what no book owns is "unmanaged".

use std::sync::atomic::Ordering;

use rust_decimal::Decimal;

use super::settle::Protection;
use super::{MonitorReport, ReconcileReport, TradingError, TradingService};
use crate::app::bus::Event;
use crate::domain::money::Qty;
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::OrderStatus;
use crate::services::exchange::{Exchange, balance_of};
use crate::services::notification::AlertKind;
use crate::store::orders::{self, StoredOrder};
use crate::store::positions::{self, UnmanagedHolding};

impl<E: Exchange + 'static> TradingService<E> {
    /// Settle unknown orders, book entries filled while down, follow protection legs, protect
    /// what is unprotected, then compare positions with the exchange's balances. What cannot be
    /// resolved keeps trading paused (and is alerted).
    pub async fn reconcile(&self, now_ms: i64) -> Result<ReconcileReport, TradingError> {
        let mut report = ReconcileReport::default();
        let symbols = {
            let db = self.store()?;
            orders::symbols_with_work(db.conn(), &self.deps.connection)?
        };
        let mut monitor = MonitorReport::default();
        for raw in symbols {
            let symbol = match Symbol::new(&raw) {
                Ok(s) => s,
                Err(e) => {
                    report.unresolved.push(format!("orders in {raw:?}: {e}"));
                    continue;
                }
            };
            let _step = self.lock_symbol(&symbol).await?;
            if let Err(e) = self
                .reconcile_symbol(&symbol, &mut report, &mut monitor, now_ms)
                .await
            {
                report
                    .unresolved
                    .push(format!("{symbol} could not be reconciled: {e}"));
            }
        }
        for closed in &monitor.closed {
            report.resolved.push(format!(
                "{} of {} filled while down at {}: position closed, realised {}",
                closed.leg, closed.symbol, closed.exit_price, closed.realized_pnl
            ));
        }
        self.check_balances(&mut report, now_ms).await?;
        self.conclude(report, now_ms).await
    }

    async fn reconcile_symbol(
        &self,
        symbol: &Symbol,
        report: &mut ReconcileReport,
        monitor: &mut MonitorReport,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let before: Vec<StoredOrder> = {
            let db = self.store()?;
            orders::unresolved_in(db.conn(), &self.deps.connection, Some(symbol.as_str()))?
        };
        self.check_protection_of(symbol, monitor, Some(report), now_ms)
            .await?;
        // A limit entry left resting: what filled while down is booked and protected by the
        // settle step below; one past its time-out (from its stored creation) is cancelled.
        for (cid, followed) in self.follow_resting_entries(symbol, now_ms).await? {
            use super::resting_entry::Followed;
            report.resolved.push(match followed {
                Followed::Resting { filled } => {
                    format!("limit entry {cid} still rests ({filled} filled so far); followed")
                }
                Followed::Filled => format!("limit entry {cid} filled while down"),
                Followed::TimedOut { filled } => {
                    format!("limit entry {cid} timed out: cancelled ({filled} filled)")
                }
                Followed::Gone { status } => format!("limit entry {cid} is {status}"),
            });
        }
        let settled = self.settle_symbol(symbol, now_ms).await?;
        report.resolved.extend(settled.resolved);
        monitor.closed.extend(settled.closed);
        for stored in &before {
            let cid = &stored.order.client_order_id;
            let now = {
                let db = self.store()?;
                orders::get(db.conn(), cid)?
            };
            if now.is_some_and(|n| n.order.status == OrderStatus::Rejected) {
                report.resolved.push(format!(
                    "order {cid} never reached the exchange: marked REJECTED"
                ));
            }
        }
        for b in &settled.booked {
            report.resolved.push(format!(
                "entry {} filled while down: {} {symbol} booked into position {}",
                b.client_order_id, b.bought, b.position_id
            ));
        }
        for (position_id, protection) in &settled.protections {
            let row = {
                let db = self.store()?;
                positions::get(db.conn(), *position_id)?
            }
            .filter(|r| r.position.closed_at.is_none());
            self.report_protection(symbol, protection, row, report, now_ms)
                .await;
        }
        Ok(())
    }

    /// What the settle step did to one book's position's protection, for the report.
    async fn report_protection(
        &self,
        symbol: &Symbol,
        protection: &Protection,
        row: Option<positions::PositionRow>,
        report: &mut ReconcileReport,
        now_ms: i64,
    ) {
        match (protection, row) {
            (Protection::Placed { ids, replaced, .. }, Some(row)) => {
                let had = if *replaced {
                    "was protected for another quantity"
                } else {
                    "had no protection on the exchange"
                };
                let line = format!(
                    "position in {symbol} ({}, book {}) {had}: placed {}",
                    row.position.quantity,
                    row.book(),
                    ids.join(", ")
                );
                self.alert(
                    AlertKind::ReconciliationDiscrepancy,
                    format!("protection_restored/{symbol}/{}", row.id),
                    format!("TradeMind: protection of {symbol} restored after a restart"),
                    line.clone(),
                    now_ms,
                )
                .await;
                report.resolved.push(line);
            }
            (Protection::Withdrawn, Some(row)) => report.unresolved.push(format!(
                "position in {symbol} ({}, book {}) is UNPROTECTED: its protection was cancelled \
                 outside TradeMind; `trademind protect {symbol} --strategy {}` places it again \
                 from its stop {} and target {}, or `trademind close {symbol} --strategy {}` \
                 sells it",
                row.position.quantity,
                row.book(),
                row.book(),
                row.position
                    .stop_loss
                    .map_or_else(|| "(none)".to_string(), |p| p.to_string()),
                row.position
                    .take_profit
                    .map_or_else(|| "(none)".to_string(), |p| p.to_string()),
                row.book()
            )),
            (Protection::Dust { quantity }, Some(row)) => report.dust.push(format!(
                "position in {symbol} ({quantity}, book {}) is dust: the exchange will not sell \
                 it (under its lot step, minimum quantity or minimum notional), so it needs no \
                 protection",
                row.book()
            )),
            (Protection::NoStopLevel, Some(row)) => report.unresolved.push(format!(
                "position in {symbol} ({}, book {}) has no protective order on the exchange and \
                 no stop level to place one: close it (`trademind close {symbol} --strategy {}`) \
                 or protect it by hand",
                row.position.quantity,
                row.book(),
                row.book()
            )),
            (Protection::Failed { error, closed }, _) => match closed {
                Ok(pnl) => report.resolved.push(format!(
                    "position in {symbol} could not be protected ({error}): closed at market, \
                     realised {pnl}"
                )),
                Err(e) => report.unresolved.push(format!(
                    "position in {symbol} could not be protected ({error}) and the market close \
                     failed ({e}): it is OPEN AND UNPROTECTED"
                )),
            },
            _ => {}
        }
    }

    /// The exchange's balance of each base asset against the sum of every book's open positions
    /// in it: a shortfall (the books hold more than the exchange) is a discrepancy; a surplus
    /// is unmanaged (bought by hand, fee dust, another tool), reported and stored for the
    /// faces, and never sold by a strategy (a close sells only its own book's quantity).
    async fn check_balances(
        &self,
        report: &mut ReconcileReport,
        now_ms: i64,
    ) -> Result<(), TradingError> {
        let open = {
            let db = self.store()?;
            positions::open_for_connection(db.conn(), &self.deps.connection)?
        };
        // Base assets of the open positions and of the configured symbols, each once.
        let mut symbols: Vec<Symbol> = open.iter().map(|r| r.position.symbol.clone()).collect();
        symbols.extend(
            self.deps
                .settings
                .trading
                .symbols
                .iter()
                .filter_map(|s| Symbol::new(s).ok()),
        );
        if symbols.is_empty() {
            return Ok(());
        }
        let balances = self.deps.exchange.balances().await?;
        // asset -> (symbols whose positions hold it, the sum of the books' sellable quantities,
        // the sum of what the books hold, dust under a lot step included)
        let mut assets: Vec<(String, Vec<Symbol>, Decimal, Decimal)> = Vec::new();
        for symbol in symbols {
            let held_here = open.iter().any(|r| r.position.symbol == symbol);
            let filters = match self.deps.exchange.symbol_filters(&symbol).await {
                Ok(f) => f,
                // A configured symbol this exchange does not list holds no book's position.
                Err(e) if !held_here => {
                    tracing::warn!(%symbol, error = %e, "no filters; its base asset is not checked");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let books_here = open.iter().filter(|r| r.position.symbol == symbol);
            let sellable: Decimal = books_here
                .clone()
                .map(|r| filters.round_qty_down(r.position.quantity).get())
                .sum();
            let booked: Decimal = books_here.map(|r| r.position.quantity.get()).sum();
            match assets.iter_mut().find(|(a, ..)| *a == filters.base_asset) {
                Some((_, syms, total, exact)) => {
                    if !syms.contains(&symbol) {
                        syms.push(symbol);
                        *total += sellable;
                        *exact += booked;
                    }
                }
                None => assets.push((filters.base_asset.clone(), vec![symbol], sellable, booked)),
            }
        }
        let mut unmanaged = Vec::new();
        for (asset, symbols, books, booked) in assets {
            let held = balance_of(&balances, &asset).total();
            if held < books {
                let names: Vec<String> = symbols.iter().map(ToString::to_string).collect();
                report.unresolved.push(format!(
                    "the exchange holds {held} {asset} but the books' open positions in {} add \
                     up to {books}",
                    names.join(", ")
                ));
            } else if held > booked {
                // The dust a base-asset fee leaves beside a protected quantity is its
                // position's (shown as its dust), not a holding of no book.
                unmanaged.push(UnmanagedHolding {
                    asset,
                    exchange_total: Qty(held),
                    books_total: Qty(booked),
                    checked_at: now_ms,
                });
            }
        }
        {
            let db = self.store()?;
            positions::replace_unmanaged(db.conn(), &self.deps.connection, &unmanaged)?;
        }
        report.unmanaged = unmanaged;
        Ok(())
    }

    /// Record the outcome: reconciled or not, health, and one alert for what is left.
    async fn conclude(
        &self,
        mut report: ReconcileReport,
        now_ms: i64,
    ) -> Result<ReconcileReport, TradingError> {
        report.reconciled = report.unresolved.is_empty();
        self.reconciled.store(report.reconciled, Ordering::SeqCst);
        if let Ok(mut u) = self.unresolved.lock() {
            u.clone_from(&report.unresolved);
        }
        for line in &report.resolved {
            tracing::info!(connection = %self.deps.connection, "reconciled: {line}");
        }
        for line in &report.dust {
            tracing::info!(connection = %self.deps.connection, "dust: {line}");
        }
        if !report.reconciled {
            let detail = report.unresolved.join("\n");
            tracing::error!(%detail, "reconciliation left discrepancies; trading stays paused");
            self.publish(Event::HealthChanged {
                component: "reconciliation".into(),
                healthy: false,
                detail: detail.clone(),
            });
            self.alert(
                AlertKind::ReconciliationDiscrepancy,
                format!("reconciliation/{}", self.deps.connection),
                format!(
                    "TradeMind: {} discrepancy(ies) with the exchange; trading paused",
                    report.unresolved.len()
                ),
                detail,
                now_ms,
            )
            .await;
        } else {
            self.publish(Event::HealthChanged {
                component: "reconciliation".into(),
                healthy: true,
                detail: format!("{} item(s) resolved", report.resolved.len()),
            });
        }
        Ok(report)
    }
}
