//! Risk: RiskManagementService (sizing, limits), the trading circuit breaker, PortfolioHeatService.
