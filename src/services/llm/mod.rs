//! LLM decisions: the OpenAI-compatible client (xAI Grok), Tavily search, prompts, the decision cache.
