// The flow table, virtualized: only the rows in view (plus a few) are in the DOM, a fixed pool
// of row elements whose cells are rewritten only where their text changed; two spacer rows stand
// for the rest. Thousands of flows cost a few dozen rows of style and layout.
import type { FlowRow } from "../../src/api/flow-aggregator.ts";
import { printable } from "../../src/config/printable.ts";
import { explainHref } from "./explain-href.ts";
import { cellTexts } from "./shown.ts";

const ROW_PX = 28;
const OVERSCAN = 6;
const COLUMNS = ["who", "remote", "port", "verdict", "rule", "count", "seen"] as const;

interface PooledRow {
  tr: HTMLTableRowElement;
  cells: HTMLTableCellElement[];
  link: HTMLAnchorElement;
  /** The flow and its count the row shows now. */
  shows: string;
}

export class FlowTable {
  private rows: FlowRow[] = [];
  private readonly scroller: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly top: HTMLTableCellElement;
  private readonly bottom: HTMLTableCellElement;
  private readonly pool: PooledRow[] = [];
  private scheduled = false;

  constructor(scroller: HTMLElement, body: HTMLTableSectionElement) {
    this.scroller = scroller;
    this.body = body;
    this.top = spacer(body);
    this.bottom = spacer(body);
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    addEventListener("resize", () => this.schedule());
  }

  show(rows: FlowRow[]): void {
    this.rows = rows;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  private render(): void {
    const view = this.scroller.clientHeight || 400;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / ROW_PX) - OVERSCAN);
    const last = Math.min(this.rows.length, first + Math.ceil(view / ROW_PX) + 2 * OVERSCAN);
    const count = last - first;
    while (this.pool.length < count) {
      const p = pooledRow();
      this.body.insertBefore(p.tr, this.bottom.parentElement);
      this.pool.push(p);
    }
    this.pool.forEach((p, i) => {
      const r = this.rows[first + i];
      p.tr.hidden = r === undefined;
      if (r) fill(p, r);
    });
    setHeight(this.top, first * ROW_PX);
    setHeight(this.bottom, (this.rows.length - last) * ROW_PX);
  }
}

function spacer(body: HTMLTableSectionElement): HTMLTableCellElement {
  const tr = document.createElement("tr");
  tr.setAttribute("aria-hidden", "true");
  tr.className = "spacer";
  const td = document.createElement("td");
  td.colSpan = COLUMNS.length + 1;
  td.style.padding = "0";
  tr.append(td);
  body.append(tr);
  setHeight(td, 0);
  return td;
}

function setHeight(td: HTMLTableCellElement, px: number): void {
  const tr = td.parentElement as HTMLTableRowElement;
  tr.hidden = px === 0;
  const h = `${px}px`;
  if (td.style.height !== h) td.style.height = h;
}

function pooledRow(): PooledRow {
  const tr = document.createElement("tr");
  const cells = COLUMNS.map((c) => {
    const td = document.createElement("td");
    td.className = c;
    tr.append(td);
    return td;
  });
  const link = document.createElement("a");
  link.textContent = "explain";
  const td = document.createElement("td");
  td.className = "explain";
  td.append(link);
  tr.append(td);
  return { tr, cells, link, shows: "" };
}

function fill(p: PooledRow, r: FlowRow): void {
  const shows = `${r.id} ${r.count} ${r.lastSeen}`;
  if (p.shows === shows) return;
  p.shows = shows;
  const texts = cellTexts(r);
  const remote = texts[1] ?? "";
  texts.forEach((text, i) => {
    const td = p.cells[i] as HTMLTableCellElement;
    if (td.textContent !== text) td.textContent = text;
  });
  p.tr.dataset.flow = String(r.id);
  const verdict = p.cells[3] as HTMLTableCellElement;
  const cls = `verdict v-${r.verdict}`;
  if (verdict.className !== cls) verdict.className = cls;
  (p.cells[1] as HTMLTableCellElement).title = printable(
    r.names.length ? `${r.names.join(", ")} (${r.remote})` : r.remote,
  );
  p.link.href = explainHref(r);
  p.link.setAttribute(
    "aria-label",
    `explain ${r.verdict} ${texts[0] ?? ""} to ${remote} port ${r.port}`,
  );
}
