//! E-mail alerts through Resend, deduplicated and rate-limited.
