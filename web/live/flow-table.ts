// The flow table, virtualized: only the rows in view (plus a few) are in the DOM; two spacer
// rows stand for the rest, so thousands of flows cost a few dozen rows of layout.
import type { FlowRow } from "../../src/api/flow-aggregator.ts";
import { explainHref } from "./explain-href.ts";

const ROW_PX = 28;
const OVERSCAN = 8;

export class FlowTable {
  private rows: FlowRow[] = [];
  private readonly scroller: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private scheduled = false;

  constructor(scroller: HTMLElement, body: HTMLTableSectionElement) {
    this.scroller = scroller;
    this.body = body;
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
    const out: HTMLTableRowElement[] = [spacer(first * ROW_PX)];
    for (let i = first; i < last; i++) out.push(rowOf(this.rows[i] as FlowRow));
    out.push(spacer((this.rows.length - last) * ROW_PX));
    this.body.replaceChildren(...out);
  }
}

function spacer(px: number): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.setAttribute("aria-hidden", "true");
  tr.className = "spacer";
  const td = document.createElement("td");
  td.colSpan = 8;
  td.style.height = `${px}px`;
  td.style.padding = "0";
  tr.append(td);
  if (px === 0) tr.hidden = true;
  return tr;
}

function cell(text: string, className: string, title = text): HTMLTableCellElement {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text;
  td.title = title;
  return td;
}

function rowOf(r: FlowRow): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.dataset.flow = String(r.id);
  const remote = r.names[0] ?? r.l7name ?? r.remote;
  const remoteTitle = r.names.length ? `${r.names.join(", ")} (${r.remote})` : r.remote;
  const a = document.createElement("a");
  a.href = explainHref(r);
  a.textContent = "explain";
  a.setAttribute("aria-label", `explain ${r.verdict} ${r.identity} to ${remote} port ${r.port}`);
  const explain = document.createElement("td");
  explain.className = "explain";
  explain.append(a);
  tr.append(
    cell(r.identity, "who"),
    cell(remote, "remote", remoteTitle),
    cell(`${r.port}/${r.protocol}`, "port"),
    cell(r.verdict, `verdict v-${r.verdict}`),
    cell(r.rule, "rule"),
    cell(String(r.count), "count"),
    cell(r.lastSeen.slice(11, 19), "seen", r.lastSeen),
    explain,
  );
  return tr;
}
