//! The tour as one self-contained HTML page (`socket-lab --html FILE`).
//!
//! The page is built from what the narrator recorded ([`lab_kit::narrate::Block`]): each
//! chapter's question, its evidence (facts, quoted lines), its answer, and the ladder
//! diagrams of its packets as inline SVG. Nothing is fetched: no script, no external style,
//! image or font, so an instructor can post the file and a student can open it offline. The
//! style suits a projector (large type, strong contrast) and paper (`@media print`).

use lab_capture::narrate::LADDER_SVG;
use lab_capture::svg::escape;
use lab_kit::narrate::Block;

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  font-size: 20px; line-height: 1.45; color: #111; background: #fff;
  max-width: 62rem; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 2rem; margin: 0.5rem 0 0.25rem; }
h2 { font-size: 1.5rem; margin: 2.5rem 0 0.5rem; padding-top: 1rem; border-top: 4px solid #1a4f8b; color: #1a4f8b; }
h3 { font-size: 1.15rem; margin: 1.75rem 0 0.4rem; color: #0b3b66; }
p { margin: 0.4rem 0; }
table.facts { border-collapse: collapse; margin: 0.5rem 0 0.75rem; }
table.facts th { text-align: left; font-weight: 600; padding: 0.15rem 1.25rem 0.15rem 0; color: #333; vertical-align: top; }
table.facts td { padding: 0.15rem 0; font-variant-numeric: tabular-nums; }
pre.evidence { background: #f3f5f8; border-left: 4px solid #8aa4c2; padding: 0.5rem 0.75rem;
  font-size: 0.8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
p.answer { background: #eef7ee; border-left: 6px solid #2e7d32; padding: 0.6rem 0.9rem; margin-top: 1.25rem; }
p.skipped, p.warn { background: #fff6e0; border-left: 6px solid #b7791f; padding: 0.4rem 0.8rem; }
figure.ladder { margin: 0.75rem 0 1rem; }
figure.ladder svg { width: 100%; max-width: 56rem; height: auto; background: #fff; }
svg text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 15px; fill: #111; }
svg text.end { font-family: system-ui, sans-serif; font-size: 17px; font-weight: 700; }
svg text.addr, svg text.time { font-size: 13px; fill: #444; }
svg line.post { stroke: #333; stroke-width: 3; }
svg line.arrow { stroke-width: 2.2; }
svg .ctl { stroke: #1a4f8b; fill: #1a4f8b; }
svg .rst { stroke: #c62828; fill: #c62828; }
svg .data { stroke: #111; fill: #111; }
svg .ack { stroke: #666; fill: #555; }
svg .icmp { stroke: #b45309; fill: #b45309; }
svg text.label { stroke: none; }
svg line.mark { stroke: #6a1b9a; stroke-dasharray: 4 4; stroke-width: 1.5; }
svg circle.mark { fill: #6a1b9a; }
svg text.mark { fill: #6a1b9a; font-style: italic; font-size: 13px; }
svg rect.gap { fill: #fff; }
svg path.break { fill: none; stroke: #888; stroke-width: 2; }
svg text.gap { fill: #555; font-size: 13px; }
svg text.summary { fill: #333; }
svg text.tls { fill: #0b6e4f; font-size: 14px; }
svg text.known { fill: #6a1b9a; font-style: italic; font-size: 13px; }
footer { margin-top: 3rem; font-size: 0.8rem; color: #555; }
@media print {
  body { font-size: 11pt; max-width: none; padding: 0; }
  h2 { break-before: page; }
  h2:first-of-type { break-before: auto; }
  figure.ladder, table.facts, pre.evidence { break-inside: avoid; }
}
"#;

#[derive(PartialEq)]
enum Open {
    Nothing,
    Facts,
    Evidence,
}

/// The whole page for the recorded `blocks`.
pub fn page(blocks: &[Block]) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>socket-lab: five socket questions, answered by experiment</title>\n<style>",
    );
    html.push_str(STYLE);
    html.push_str("</style>\n</head>\n<body>\n<h1>socket-lab</h1>\n");
    html.push_str(
        "<p>Five classic socket questions, answered by experiments that ran on one machine. \
         Every number below was measured in that run; every ladder diagram is drawn from the \
         packets captured on the wire.</p>\n",
    );
    let mut open = Open::Nothing;
    let mut in_chapter = false;
    let mut after_ladder = false;
    for block in blocks {
        // The text ladder that follows a drawn one is the same ladder: show the drawing.
        if after_ladder && matches!(block, Block::Evidence { .. }) {
            continue;
        }
        after_ladder = false;
        let wants = match block {
            Block::Fact { .. } => Open::Facts,
            Block::Evidence { .. } => Open::Evidence,
            _ => Open::Nothing,
        };
        if wants != open {
            close(&mut html, &open);
            match wants {
                Open::Facts => html.push_str("<table class=\"facts\">\n"),
                Open::Evidence => html.push_str("<pre class=\"evidence\">"),
                Open::Nothing => {}
            }
            open = wants;
        }
        match block {
            Block::Heading { text } => {
                if in_chapter {
                    html.push_str("</section>\n");
                }
                in_chapter = true;
                html.push_str(&format!(
                    "<section class=\"chapter\">\n<h2>{}</h2>\n",
                    escape(text)
                ));
            }
            Block::Section { text } => html.push_str(&format!("<h3>{}</h3>\n", escape(text))),
            Block::Say { text } => html.push_str(&format!("<p>{}</p>\n", escape(text))),
            Block::Fact { label, value } => html.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                escape(label),
                escape(value)
            )),
            Block::Evidence { text } => html.push_str(&format!("{}\n", escape(text))),
            Block::Answer { text } => html.push_str(&format!(
                "<p class=\"answer\"><strong>Answer:</strong> {}</p>\n",
                escape(text)
            )),
            Block::Skipped { what, why } => html.push_str(&format!(
                "<p class=\"skipped\"><strong>Skipped:</strong> {}: {}</p>\n",
                escape(what),
                escape(why)
            )),
            Block::Warn { text } => html.push_str(&format!(
                "<p class=\"warn\"><strong>Warning:</strong> {}</p>\n",
                escape(text)
            )),
            Block::Attachment { name, content } if name == LADDER_SVG => {
                // Made by lab_capture::svg from captured packets, its text escaped there.
                html.push_str(&format!("<figure class=\"ladder\">{content}</figure>\n"));
                after_ladder = true;
            }
            Block::Attachment { .. } => {}
        }
    }
    close(&mut html, &open);
    if in_chapter {
        html.push_str("</section>\n");
    }
    html.push_str(
        "<footer>Made by socket-lab (<code>socket-lab --html FILE</code>). Ladder diagrams: \
         time runs down; rows closer than the smallest readable distance are spread apart, \
         and long gaps are drawn as breaks with their length. Dashed purple lines are the \
         programs' own events, not packets; purple italic notes (↳) under an arrow are what \
         the programs know that packet carried, not what the wire shows.</footer>\n</body>\n</html>\n",
    );
    html
}

fn close(html: &mut String, open: &Open) {
    match open {
        Open::Facts => html.push_str("</table>\n"),
        Open::Evidence => html.push_str("</pre>\n"),
        Open::Nothing => {}
    }
}
