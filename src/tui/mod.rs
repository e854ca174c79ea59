//! The ratatui interface: actions (messages), a pure update, and draw functions per screen.
