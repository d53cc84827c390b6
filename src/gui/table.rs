//! A table that holds at any window size: it scrolls both ways with its header row and its
//! first columns (the names) kept in view, draws only the rows and columns that show (a model
//! of a thousand layers costs what its visible rows cost), and elides long text with the
//! whole on hover ([`elided`]).

use eframe::egui;

pub struct Column {
    pub title: String,
    pub width: f32,
    /// What the header says on hover (the title's meaning).
    pub hover: Option<String>,
}

impl Column {
    pub fn new(title: impl Into<String>, width: f32) -> Self {
        Column {
            title: title.into(),
            width,
            hover: None,
        }
    }

    pub fn hover(mut self, text: impl Into<String>) -> Self {
        self.hover = Some(text.into());
        self
    }

    /// Wide enough for `title` and each of `texts` (body text), within `min..=max`.
    pub fn fitted<'a>(
        ui: &egui::Ui,
        title: impl Into<String>,
        texts: impl IntoIterator<Item = &'a str>,
        min: f32,
        max: f32,
    ) -> Self {
        let title = title.into();
        let widest = texts
            .into_iter()
            .map(|t| text_width(ui, t, egui::TextStyle::Body))
            .chain([text_width(ui, &title, egui::TextStyle::Body) + 4.0])
            .fold(0.0, f32::max);
        Column::new(title, (widest + 8.0).clamp(min, max))
    }
}

/// The width `text` takes in `style` on one line.
pub fn text_width(ui: &egui::Ui, text: &str, style: egui::TextStyle) -> f32 {
    let font = style.resolve(ui.style());
    ui.ctx().fonts_mut(|f| {
        f.layout_no_wrap(text.to_owned(), font, egui::Color32::PLACEHOLDER)
            .size()
            .x
    })
}

/// `text` on one line of at most `max_width`, cut with "…" when longer; whether it was cut.
/// Any widget takes it (`selectable_label`, `button`, `label`): the cut stays.
pub fn elided(ui: &egui::Ui, text: &str, max_width: f32) -> (egui::WidgetText, bool) {
    let font = egui::TextStyle::Body.resolve(ui.style());
    let mut job =
        egui::text::LayoutJob::simple_singleline(text.to_owned(), font, egui::Color32::PLACEHOLDER);
    job.wrap = egui::text::TextWrapping {
        overflow_character: Some('…'),
        ..egui::text::TextWrapping::truncate_at_width(max_width.max(8.0))
    };
    let galley = ui.ctx().fonts_mut(|f| f.layout_job(job));
    let cut = galley.elided;
    (egui::WidgetText::Galley(galley), cut)
}

/// Runs `add` as the content of a scroll area, marked as such for assistive technology (and
/// for the layout test: what lies outside the window inside it is scrolled away, not cut off).
pub fn scrolled<R>(ui: &mut egui::Ui, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    ui.scope_builder(
        egui::UiBuilder::new().accessibility_role(egui::accesskit::Role::ScrollView),
        add,
    )
    .inner
}

/// A label cut to `max_width`, the whole text on hover when cut.
pub fn elided_text(ui: &mut egui::Ui, text: &str, max_width: f32) -> egui::Response {
    let (shown, cut) = elided(ui, text, max_width);
    let response = ui.add(egui::Label::new(shown).selectable(false));
    if cut {
        response.on_hover_text(text)
    } else {
        response
    }
}

pub struct Table<'a> {
    id: egui::IdSalt,
    /// The id salt in words (what a layout test names).
    name: String,
    columns: &'a [Column],
    /// The leading columns kept in view when the table scrolls sideways.
    frozen: usize,
    row_height: f32,
    header_height: f32,
    striped: bool,
    /// Scroll to bring this row into view (this frame), and mark it.
    scroll_to: Option<usize>,
    highlight: Option<usize>,
}

const GAP: f32 = 8.0;

impl<'a> Table<'a> {
    pub fn new(id_salt: impl egui::AsIdSalt, columns: &'a [Column]) -> Self {
        Table {
            name: format!("{id_salt:?}"),
            id: egui::IdSalt::new(id_salt),
            columns,
            frozen: 1,
            row_height: 22.0,
            header_height: 22.0,
            striped: true,
            scroll_to: None,
            highlight: None,
        }
    }

    pub fn frozen(mut self, columns: usize) -> Self {
        self.frozen = columns.min(self.columns.len());
        self
    }

    pub fn row_height(mut self, h: f32) -> Self {
        self.row_height = h;
        self
    }

    pub fn header_height(mut self, h: f32) -> Self {
        self.header_height = h;
        self
    }

    /// Scrolls `row` into view in this frame.
    pub fn scroll_to(mut self, row: Option<usize>) -> Self {
        self.scroll_to = row;
        self
    }

    /// Marks `row` (the selection's colour behind it).
    pub fn highlight(mut self, row: Option<usize>) -> Self {
        self.highlight = row;
        self
    }

    pub fn striped(mut self, on: bool) -> Self {
        self.striped = on;
        self
    }

    /// The table with `rows` rows in the space left, `max_height` at most; `cell(ui, row,
    /// column)` draws a body cell inside its rect.
    pub fn show(
        self,
        ui: &mut egui::Ui,
        rows: usize,
        max_height: f32,
        cell: impl FnMut(&mut egui::Ui, usize, usize),
    ) {
        let columns = self.columns;
        self.show_with_header(
            ui,
            rows,
            max_height,
            |ui, c| {
                let column = &columns[c];
                let (text, cut) = elided(ui, &column.title, column.width);
                let r = ui.add(egui::Label::new(text.strong()).selectable(false));
                match (&column.hover, cut) {
                    (Some(h), _) => {
                        r.on_hover_text(format!("{}: {h}", column.title));
                    }
                    (None, true) => {
                        r.on_hover_text(&column.title);
                    }
                    _ => {}
                }
            },
            cell,
        );
    }

    /// [`Table::show`] with the header cells drawn by `header(ui, column)`.
    pub fn show_with_header(
        self,
        ui: &mut egui::Ui,
        rows: usize,
        max_height: f32,
        mut header: impl FnMut(&mut egui::Ui, usize),
        mut cell: impl FnMut(&mut egui::Ui, usize, usize),
    ) {
        let mut xs = Vec::with_capacity(self.columns.len());
        let mut x = 0.0;
        for c in self.columns {
            xs.push(x);
            x += c.width + GAP;
        }
        let width = x;
        let frozen_width = xs.get(self.frozen).copied().unwrap_or(width);
        let height = self.header_height + rows as f32 * self.row_height;
        let mut area = egui::ScrollArea::both()
            .id_salt(self.id)
            // Filling the space given: a panel holding the table keeps its size.
            .auto_shrink([false, false])
            .max_height(max_height);
        if let Some(row) = self.scroll_to {
            // A few rows above it stay in view, for context.
            area = area.vertical_scroll_offset((row.saturating_sub(3) as f32) * self.row_height);
        }
        area.show_viewport(ui, |ui, viewport| {
            scrolled(ui, |ui| {
                ui.set_min_size(egui::vec2(width, height));
                let origin = ui.min_rect().min;
                let visible = ui.clip_rect();
                let at = |x: f32, y: f32, w: f32, h: f32| {
                    egui::Rect::from_min_size(origin + egui::vec2(x, y), egui::vec2(w, h))
                };
                let body = egui::Rect::from_min_max(
                    egui::pos2(visible.min.x, visible.min.y + self.header_height),
                    visible.max,
                );
                let scrolled = egui::Rect::from_min_max(
                    egui::pos2(visible.min.x + frozen_width, body.min.y),
                    body.max,
                );
                let first = ((viewport.min.y - self.header_height) / self.row_height)
                    .floor()
                    .max(0.0) as usize;
                let last = (((viewport.max.y - self.header_height) / self.row_height).ceil()
                    as usize)
                    .min(rows);
                // Where column `c` is drawn (frozen ones at the viewport's left), if it shows.
                let shown_x = |c: usize| {
                    if c < self.frozen {
                        return Some(viewport.min.x + xs[c]);
                    }
                    let (x, w) = (xs[c], self.columns[c].width);
                    (x <= viewport.max.x && x + w >= viewport.min.x).then_some(x)
                };
                for row in first..last {
                    let y = self.header_height + row as f32 * self.row_height;
                    let band = at(viewport.min.x, y, viewport.width(), self.row_height);
                    self.paint_band(ui, row, band, body);
                    for (c, column) in self.columns.iter().enumerate() {
                        let Some(x) = shown_x(c) else { continue };
                        let rect = at(x, y, column.width, self.row_height);
                        let clip = if c < self.frozen { body } else { scrolled };
                        in_rect(ui, (&self.name, row, c), rect, clip, |ui| cell(ui, row, c));
                    }
                }
                let strip = egui::Rect::from_min_size(
                    visible.min,
                    egui::vec2(visible.width(), self.header_height),
                );
                ui.painter()
                    .rect_filled(strip, 0.0, ui.visuals().panel_fill);
                for (c, column) in self.columns.iter().enumerate() {
                    let Some(x) = shown_x(c) else { continue };
                    let frozen = c < self.frozen;
                    let rect = at(x, viewport.min.y, column.width, self.header_height);
                    let clip = if frozen {
                        strip
                    } else {
                        strip.intersect(egui::Rect::everything_right_of(
                            visible.min.x + frozen_width,
                        ))
                    };
                    in_rect(ui, (&self.name, "header", c), rect, clip, |ui| {
                        header(ui, c)
                    });
                }
                self.paint_dividers(ui, visible, strip.bottom(), frozen_width);
            })
        });
    }

    /// Row `row`'s background: the highlight's colour, or the stripe on odd rows.
    fn paint_band(&self, ui: &egui::Ui, row: usize, band: egui::Rect, clip: egui::Rect) {
        let painter = ui.painter().with_clip_rect(clip);
        if self.highlight == Some(row) {
            let fill = ui.visuals().selection.bg_fill.gamma_multiply(0.5);
            painter.rect_filled(band, 2.0, fill);
        } else if self.striped && row % 2 == 1 {
            painter.rect_filled(band, 0.0, ui.visuals().faint_bg_color);
        }
    }

    /// The line under the header and the one after the frozen columns.
    fn paint_dividers(
        &self,
        ui: &egui::Ui,
        visible: egui::Rect,
        header_bottom: f32,
        frozen_width: f32,
    ) {
        let stroke = ui.visuals().widgets.noninteractive.bg_stroke;
        ui.painter().hline(visible.x_range(), header_bottom, stroke);
        if self.frozen > 0 && self.frozen < self.columns.len() {
            let x = visible.min.x + frozen_width - GAP / 2.0;
            ui.painter().vline(x, visible.y_range(), stroke);
        }
    }
}

/// Runs `add` in a child of `ui` filling `rect`, left to right and centred vertically,
/// painting and sensing only inside `clip`.
fn in_rect(
    ui: &mut egui::Ui,
    salt: impl egui::AsIdSalt,
    rect: egui::Rect,
    clip: egui::Rect,
    add: impl FnOnce(&mut egui::Ui),
) {
    let clip = clip.intersect(rect.expand(1.0));
    if !clip.is_positive() {
        return;
    }
    #[cfg(test)]
    let what = format!("{salt:?}");
    ui.scope_builder(
        egui::UiBuilder::new()
            .id_salt(salt)
            .max_rect(rect)
            .layout(egui::Layout::left_to_right(egui::Align::Center)),
        |ui| {
            ui.set_clip_rect(clip);
            ui.spacing_mut().item_spacing.x = 4.0;
            add(ui);
            #[cfg(test)]
            if ui.min_rect().width() > rect.width() + 1.0 {
                CLIPPED.with(|c| {
                    let mut c = c.borrow_mut();
                    c.retain(|x| !x.starts_with(&format!("table cell {what}:")));
                    c.push(format!(
                        "table cell {what}: {:.0} px in a column of {:.0}",
                        ui.min_rect().width(),
                        rect.width()
                    ))
                });
            }
        },
    );
}

#[cfg(test)]
thread_local! {
    /// Table cells whose content was wider than their column (its text cut), on this thread.
    pub static CLIPPED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The row of the layer focused elsewhere (`focus`, found by `row_of`) to highlight, and the
/// row to scroll to: only the first time a focus shows (`scrolled_to` remembers it), so the
/// user may scroll away.
pub fn focused_rows(
    focus: Option<&str>,
    scrolled_to: &mut Option<String>,
    row_of: impl Fn(&str) -> Option<usize>,
) -> (Option<usize>, Option<usize>) {
    let row = focus.and_then(row_of);
    let scroll = row.filter(|_| scrolled_to.as_deref() != focus);
    if scroll.is_some() {
        *scrolled_to = focus.map(str::to_string);
    }
    (row, scroll)
}

/// A small triangle after a sorted column's title: up for ascending, down for descending (the
/// bundled fonts have no arrow glyphs).
pub fn sort_arrow(ui: &mut egui::Ui, descending: bool) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(9.0, 9.0), egui::Sense::hover());
    let (c, h) = (rect.center(), 3.5);
    let points = if descending {
        vec![
            c + egui::vec2(-h, -h * 0.6),
            c + egui::vec2(h, -h * 0.6),
            c + egui::vec2(0.0, h * 0.8),
        ]
    } else {
        vec![
            c + egui::vec2(-h, h * 0.6),
            c + egui::vec2(h, h * 0.6),
            c + egui::vec2(0.0, -h * 0.8),
        ]
    };
    ui.painter().add(egui::Shape::convex_polygon(
        points,
        ui.visuals().strong_text_color(),
        egui::Stroke::NONE,
    ));
}
