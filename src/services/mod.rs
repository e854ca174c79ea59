//! Adapters to the outside world, each behind a trait the application owns.

pub mod exchange;
pub mod llm;
pub mod market_data;
pub mod market_stream;
pub mod monitoring;
pub mod notification;
pub mod telegram;

/// A transport error as one line, its causes included (`error sending request: dns error: ...`)
/// and its URL left out: a signed URL carries a signature, and the caller knows the endpoint.
pub fn describe_http_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn transport_errors_name_their_cause_but_not_the_url() {
        // Nothing listens on a port that was just released.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("http://127.0.0.1:{port}/api/v3/account?signature=deadbeef");
        let err = reqwest::get(&url).await.unwrap_err();
        let text = super::describe_http_error(err);
        assert!(text.contains("error sending request: "), "{text}");
        assert!(text.to_lowercase().contains("connect"), "{text}");
        assert!(
            !text.contains("deadbeef") && !text.contains("/api/v3"),
            "{text}"
        );
    }
}
