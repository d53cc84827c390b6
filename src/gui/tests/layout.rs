//! The window at the sizes people use: nothing cut off, in any view.

use egui_kittest::kittest::{By, NodeT};

use super::*;
use crate::gui::{CentralView, SetupTab};

/// The widgets that lie (partly) outside `window` without being inside a scroll area, and the
/// table cells whose text did not fit their column, as "label (role) at rect".
fn cut_off(h: &Harness<'static, WorkbenchApp>, window: egui::Rect) -> Vec<String> {
    let mut found = vec![];
    for node in h.query_all(By::new().predicate(|n| n.bounding_box().is_some())) {
        let rect = node.rect();
        if window.expand(0.5).contains_rect(rect) || rect.area() == 0.0 {
            continue;
        }
        let a = node.accesskit_node();
        let mut parent = a.parent();
        let mut scrolled = false;
        while let Some(p) = parent {
            if p.role() == egui::accesskit::Role::ScrollView {
                scrolled = true;
                break;
            }
            parent = p.parent();
        }
        if !scrolled {
            found.push(format!(
                "{:?} ({:?}) at {rect:?}",
                a.label().unwrap_or_default(),
                a.role()
            ));
        }
    }
    found.extend(crate::gui::table::CLIPPED.with(|c| std::mem::take(&mut *c.borrow_mut())));
    found
}

/// At 1280x800 (the window's default size) and at 1920x1080, in every view and every setup
/// tab, every widget is inside the window or inside a scroll area, and no table cell cuts its
/// text: with results, a long experiment name, and the long error of a text file opened as a
/// model on screen.
#[test]
fn every_view_fits_the_window_at_1280x800_and_1920x1080() {
    let dir = tempfile::tempdir().unwrap();
    let not_onnx = dir
        .path()
        .join("notes-from-a-meeting-about-the-quantization-plan.onnx");
    std::fs::write(&not_onnx, "hello, this is a text file").unwrap();
    for size in [egui::vec2(1280.0, 800.0), egui::vec2(1920.0, 1080.0)] {
        let mut h = empty_harness_of(size);
        open(&mut h, sample());
        add_and_run(&mut h);
        click(&mut h, "Add standard preset");
        click_contains(&mut h, "pending)");
        run_until_idle(&mut h);
        if let Some(s) = h.state_mut().session.as_mut() {
            s.experiments[1].name = "int8 per-channel percentile=99.99 cle adaround bias-full, \
                                     the variant someone named at length"
                .into();
        }
        h.state_mut().apply(AppCommand::OpenPath(not_onnx.clone()));
        run_until_idle(&mut h);
        assert!(
            h.state()
                .messages
                .iter()
                .any(|(_, m)| m.contains("not a valid ONNX model")),
            "{:?}",
            h.state().messages
        );
        h.state_mut()
            .apply(AppCommand::Select(Some(ExperimentId(2))));
        let window = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
        for view in [
            CentralView::Overview,
            CentralView::Tradeoff,
            CentralView::Heatmap,
            CentralView::Compare,
            CentralView::Layers,
            CentralView::SpeedUp,
            CentralView::Tune,
        ] {
            for tab in [SetupTab::Model, SetupTab::Dataset, SetupTab::Settings] {
                h.state_mut().apply(AppCommand::SetView(view));
                h.state_mut().persisted.setup_tab = tab;
                h.run_steps(3);
                // The Speed-up view finds out in a job on first sight.
                run_until_idle(&mut h);
                let cut = cut_off(&h, window);
                assert!(
                    cut.is_empty(),
                    "{size:?}, {view:?} with the {tab:?} tab:\n{cut:#?}"
                );
            }
        }
        // The experiments panel shows at least six rows without a drag: their ids' buttons.
        for id in 1..=6 {
            let label = id.to_string();
            let shown = h
                .query_all(By::new().label(&label).role(egui::accesskit::Role::Button))
                .any(|n| window.contains_rect(n.rect()));
            assert!(shown, "{size:?}: experiment row {id} is not in the window");
        }
    }
}
