//! Render time of the busiest screen: Market with 500 candles, indicator overlays and a
//! 100-level-a-side order book into a 200×60 buffer. Target: under 2 ms a frame.
//! Run: `cargo bench --bench tui_render`.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::{Duration, Instant};

use trademind::tui::action::{Action, Screen};
use trademind::tui::fixture;
use trademind::tui::state::App;
use trademind::tui::theme::Theme;
use trademind::tui::update::update;
use trademind::tui::view;

const TARGET: Duration = Duration::from_millis(2);

fn main() {
    let mut snapshot = fixture::snapshot();
    snapshot.market = fixture::market(500, 100);
    let mut app = App::new(snapshot);
    update(&mut app, Action::GoTo(Screen::Market));
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    let theme = Theme::new(true);

    for _ in 0..50 {
        terminal.draw(|f| view::draw(f, &app, theme)).expect("draw");
    }
    let frames = 1000;
    let mut samples = Vec::with_capacity(frames);
    for _ in 0..frames {
        // A changed frame every time, as when a price tick arrives: the backend diffs cells.
        app.dirty = true;
        let start = Instant::now();
        terminal.draw(|f| view::draw(f, &app, theme)).expect("draw");
        samples.push(start.elapsed());
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / frames as u32;
    let p50 = samples[frames / 2];
    let p99 = samples[frames * 99 / 100];
    println!(
        "tui_render market 200x60, 500 candles, 100 levels/side: mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms over {frames} frames (target < {} ms)",
        mean.as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        TARGET.as_millis()
    );
    if mean > TARGET {
        println!("WARNING: mean frame time is above the target");
    }
}
