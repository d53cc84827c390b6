//! The window at its default size: nothing cut off.

use super::*;

/// At 1280x800 (the window's default size) every button of the toolbar and of the
/// experiments bar is wholly inside the window: none is cut off ("Expo…").
#[test]
fn every_toolbar_button_fits_a_1280_by_800_window() {
    let mut h = harness();
    add_and_run(&mut h);
    h.run();
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1280.0, 800.0));
    let labels = [
        "Open…",
        "Open plan…",
        "Open path",
        "Recent",
        "Save session…",
        "Save screenshot…",
        "Export table…",
        "Overview",
        "Trade-off",
        "Heatmap",
        "Compare",
        "Add experiment",
        "Add standard preset",
        "Cancel",
        "Export",
        "Export…",
        "Export plan…",
        "Latency on",
    ];
    for label in labels {
        // "Trade-off" is also the plot's title: every node so named must fit.
        let rects: Vec<egui::Rect> = h.get_all_by_label(label).map(|n| n.rect()).collect();
        assert!(!rects.is_empty(), "no '{label}'");
        for rect in rects {
            assert!(
                window.contains_rect(rect) && rect.width() > 10.0,
                "'{label}' at {rect:?} is not wholly inside the 1280x800 window"
            );
        }
    }
    let run = h.get_by_label_contains("Run (").rect();
    assert!(window.contains_rect(run), "Run at {run:?}");
}
