//! Any text piped to `keys set`: parsing and validation must not panic, and no error message may
//! quote the input. Every input line is tagged with a marker no message contains on its own, so
//! a quoted line is detected without false alarms.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trademind::cli::keys::credential_from_lines;
use trademind::secrets::SecretKind;

const MARK: &str = "QxZ7mark";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tagged: String = text.lines().map(|l| format!("{MARK}{l}\n")).collect();
    for input in [text, tagged.as_str()] {
        for kind in SecretKind::ALL {
            let message = match credential_from_lines(kind, input) {
                Ok(credential) => match credential.validate_for(kind) {
                    Ok(()) => continue,
                    Err(e) => e.to_string(),
                },
                Err(message) => message,
            };
            assert!(!message.contains(MARK), "error message quotes the input: {message}");
        }
    }
});
