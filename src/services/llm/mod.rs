//! LLM decisions: the OpenAI-compatible client (xAI Grok, OpenAI, Ollama, llama.cpp) with xAI's
//! Responses API for web/X search, the Tavily news client, prompt building and cost accounting.

pub mod cache;
pub mod client;
pub mod config;
pub mod prompt;
pub mod tavily;

pub use cache::LlmCache;
pub use client::{ChatMessage, LlmClient, LlmError, LlmReply};
pub use config::{ApiKey, BudgetFallback, LlmConfig, ModelPrice, TavilyConfig};
pub use prompt::{PromptParts, SYSTEM_PROMPT, build_prompt, load_template};
pub use tavily::{
    NewsItem, NewsSplit, NewsWindow, TavilyClient, TavilyError, drop_news_after, split_news_at,
};
