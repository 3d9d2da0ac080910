// The city drawn from the API's data alone: H3 cells (boundaries from h3-js) and points, on an
// equirectangular projection fitted to the city, in one SVG. Wheel zooms, drag pans.
import { cellToBoundary, cellToLatLng } from "./vendor/h3-js.es.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 1000;

export const svgEl = (name, attrs = {}, parent) => {
	const el = document.createElementNS(SVG, name);
	for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
	parent?.appendChild(el);
	return el;
};

/** Colour classes by free doors: 0 is its own class (nothing to give), then four equal steps of a round size. */
export function freeScale(values) {
	const max = Math.max(0, ...values);
	const raw = Math.max(1, Math.ceil(max / 4));
	const step = [1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 25, 30, 40, 50, 75].find(n => n >= raw) ?? Math.ceil(raw / 100) * 100;
	const bounds = [1, 2, 3].map(i => [(i - 1) * step + 1, i * step]).concat([[3 * step + 1, Infinity]]);
	const label = ([a, b]) => (b === Infinity ? `${a}+` : a === b ? `${a}` : `${a}–${b}`);
	return {
		classOf: v => (v <= 0 ? "free-0" : `free-${Math.min(4, Math.ceil(v / step))}`),
		legend: [["free-0", "0 free"], ...bounds.map((b, i) => [`free-${i + 1}`, label(b)])],
	};
}

export function pointClass(p) {
	const free = (p.available?.S ?? 0) + (p.available?.M ?? 0) + (p.available?.L ?? 0);
	return free === 0 ? "pt-none" : free <= 2 ? "pt-low" : "pt-ok";
}

export class CityMap {
	constructor(svg, { onPoint }) {
		this.svg = svg;
		this.onPoint = onPoint;
		this.view = null;
		this.full = null;
		this.layers = {};
		this.enablePanZoom();
	}

	/** cells: [{h3, points, availableDoors}], points: [{id, name, lat, lng, available}], flags: pointId → {offline, alerts} */
	draw({ cells, points, flags, selectedId }) {
		const rings = cells.map(c => ({ cell: c, ring: cellToBoundary(c.h3) })); // [lat, lng] pairs
		const all = [...rings.flatMap(r => r.ring), ...points.map(p => [p.lat, p.lng])];
		this.svg.replaceChildren();
		if (!all.length) {
			this.svg.setAttribute("viewBox", `0 0 ${W} ${W * 0.6}`);
			svgEl("text", { x: W / 2, y: W * 0.3, class: "empty", "text-anchor": "middle" }, this.svg).textContent = "No points in this city";
			return { scale: freeScale([]) };
		}
		const lats = all.map(a => a[0]);
		const lngs = all.map(a => a[1]);
		const [minLat, maxLat, minLng, maxLng] = [Math.min(...lats), Math.max(...lats), Math.min(...lngs), Math.max(...lngs)];
		const k = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
		const spanX = Math.max((maxLng - minLng) * k, 1e-4);
		const spanY = Math.max(maxLat - minLat, 1e-4);
		const s = W / spanX;
		const H = Math.max(200, Math.min(W * 1.4, spanY * s));
		const fit = Math.min(s, H / spanY) * 0.92;
		const ox = (W - spanX * fit) / 2;
		const oy = (H - spanY * fit) / 2;
		this.project = (lat, lng) => [ox + (lng - minLng) * k * fit, oy + (maxLat - lat) * fit];
		this.full = { x: 0, y: 0, w: W, h: H };
		if (!this.keepView || !this.view) this.view = { ...this.full };
		this.keepView = false;

		const scale = freeScale(cells.map(c => c.availableDoors));
		const gCells = svgEl("g", { class: "cells" }, this.svg);
		const gLabels = svgEl("g", { class: "cell-labels" }, this.svg);
		const gPoints = svgEl("g", { class: "points" }, this.svg);
		// Numbers only where a cell is wide enough on screen to hold one.
		const widths = rings.slice(0, 50).map(({ ring }) => {
			const xs = ring.map(([la, ln]) => this.project(la, ln)[0]);
			return Math.max(...xs) - Math.min(...xs);
		});
		const label = cells.length <= 400 && widths.length > 0 && Math.min(...widths) >= 22;
		for (const { cell, ring } of rings) {
			const poly = svgEl("polygon", {
				class: `cell ${scale.classOf(cell.availableDoors)}`,
				points: ring.map(([la, ln]) => this.project(la, ln).map(v => v.toFixed(1)).join(",")).join(" "),
				"data-h3": cell.h3,
				"data-free": cell.availableDoors,
			}, gCells);
			svgEl("title", {}, poly).textContent = `${cell.h3}\n${cell.points} point(s), ${cell.availableDoors} free door(s)`;
			if (label) {
				const [x, y] = this.project(...cellToLatLng(cell.h3));
				svgEl("text", { x: x.toFixed(1), y: y.toFixed(1), class: "cell-label" }, gLabels).textContent = String(cell.availableDoors);
			}
		}
		const r = Math.max(3.5, Math.min(7, 200 / Math.sqrt(points.length + 1)));
		for (const p of points) {
			const [x, y] = this.project(p.lat, p.lng);
			const f = flags.get(p.id);
			const g = svgEl("g", { class: `point ${pointClass(p)}${f ? " trouble" : ""}${p.id === selectedId ? " selected" : ""}`, "data-point-id": p.id, tabindex: 0, role: "button" }, gPoints);
			if (f) svgEl("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: (r * 3.2).toFixed(1), class: "halo", "data-r": r * 3.2 }, g);
			svgEl("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: r.toFixed(1), class: "dot", "data-r": r }, g);
			const a = p.available ?? {};
			const trouble = f ? `\n⚠ ${[f.offline ? `${f.offline} cabinet(s) offline` : "", f.alerts ? `${f.alerts} alert(s) firing` : ""].filter(Boolean).join(", ")}` : "";
			svgEl("title", {}, g).textContent = `${p.name}\nfree S ${a.S ?? 0} · M ${a.M ?? 0} · L ${a.L ?? 0}${trouble}`;
			const pick = () => this.onPoint(p.id);
			g.addEventListener("click", e => {
				if (!this.dragged) pick();
				e.stopPropagation();
			});
			g.addEventListener("keydown", e => {
				if (e.key === "Enter" || e.key === " ") pick();
			});
		}
		this.applyView();
		return { scale };
	}

	applyView() {
		const v = this.view;
		const zoom = this.full ? this.full.w / v.w : 1;
		this.svg.setAttribute("viewBox", `${v.x.toFixed(2)} ${v.y.toFixed(2)} ${v.w.toFixed(2)} ${v.h.toFixed(2)}`);
		this.svg.style.setProperty("--zoom", String(zoom));
		// Points grow a little when zoomed in, not with the map: they stay marks, not discs.
		const k = zoom ** -0.75;
		for (const c of this.svg.querySelectorAll("circle[data-r]")) c.setAttribute("r", (Number(c.dataset.r) * k).toFixed(2));
	}

	resetView() {
		if (!this.full) return;
		this.view = { ...this.full };
		this.applyView();
	}

	enablePanZoom() {
		const svg = this.svg;
		const toView = (cx, cy) => {
			const b = svg.getBoundingClientRect();
			const v = this.view;
			// preserveAspectRatio meet: one scale, centred
			const sc = Math.min(b.width / v.w, b.height / v.h);
			return [v.x + (cx - b.left - (b.width - v.w * sc) / 2) / sc, v.y + (cy - b.top - (b.height - v.h * sc) / 2) / sc, sc];
		};
		svg.addEventListener("wheel", e => {
			if (!this.view) return;
			e.preventDefault();
			const [px, py] = toView(e.clientX, e.clientY);
			const f = Math.exp(Math.sign(e.deltaY) * 0.18);
			const w = Math.min(this.full.w * 1.5, Math.max(this.full.w / 40, this.view.w * f));
			const h = (this.view.h * w) / this.view.w;
			this.view = { x: px - ((px - this.view.x) * w) / this.view.w, y: py - ((py - this.view.y) * h) / this.view.h, w, h };
			this.applyView();
		}, { passive: false });
		let start = null;
		svg.addEventListener("pointerdown", e => {
			if (!this.view || e.button !== 0) return;
			start = { x: e.clientX, y: e.clientY, view: { ...this.view }, sc: toView(e.clientX, e.clientY)[2] };
			this.dragged = false;
		});
		svg.addEventListener("pointermove", e => {
			if (!start) return;
			const dx = e.clientX - start.x;
			const dy = e.clientY - start.y;
			if (!this.dragged && Math.hypot(dx, dy) < 4) return;
			if (!this.dragged) svg.setPointerCapture(e.pointerId);
			this.dragged = true;
			this.view = { ...start.view, x: start.view.x - dx / start.sc, y: start.view.y - dy / start.sc };
			this.applyView();
		});
		const end = () => {
			start = null;
			setTimeout(() => (this.dragged = false), 0);
		};
		svg.addEventListener("pointerup", end);
		svg.addEventListener("pointercancel", end);
	}
}
