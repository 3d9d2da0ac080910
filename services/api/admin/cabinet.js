// A cabinet's doors as tiles; each door's tile is updated in place when its state changes
// (from the event stream, or from polling), and a remote open asks for a reason first.
import { api } from "./api.js";

export const STATE_WORDS = {
	available: "空闲 free",
	reserved: "已预约 reserved",
	occupied: "占用 occupied",
	fault: "故障 fault",
	disabled: "停用 disabled",
};

export const el = (tag, attrs = {}, ...children) => {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === undefined || v === null || v === false) continue;
		if (k === "class") e.className = v;
		else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
		else e.setAttribute(k, v === true ? "" : String(v));
	}
	for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
	return e;
};

export function ago(iso) {
	if (!iso) return "never";
	const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
	if (s < 60) return `${s} s ago`;
	if (s < 3600) return `${Math.round(s / 60)} min ago`;
	if (s < 86400) return `${Math.round(s / 3600)} h ago`;
	return `${Math.round(s / 86400)} d ago`;
}

export class CabinetView {
	constructor(root, { onChanged }) {
		this.root = root;
		this.onChanged = onChanged;
		this.cabinet = null;
		this.tiles = new Map();
		this.target = null;
	}

	get id() {
		return this.cabinet?.id ?? null;
	}

	close() {
		this.cabinet = null;
		this.tiles.clear();
		this.root.replaceChildren();
		this.root.hidden = true;
	}

	async open(cabinetId) {
		this.root.hidden = false;
		this.root.replaceChildren(el("p", { class: "muted" }, `Loading cabinet ${cabinetId}…`));
		try {
			this.show(await api("GET", `/cabinets/${encodeURIComponent(cabinetId)}`));
		} catch (err) {
			this.root.replaceChildren(el("p", { class: "error" }, `Cabinet ${cabinetId}: ${err.message}`));
		}
	}

	async reload() {
		if (!this.cabinet) return;
		try {
			const fresh = await api("GET", `/cabinets/${encodeURIComponent(this.cabinet.id)}`);
			if (fresh.id !== this.cabinet?.id) return;
			this.setOnline(fresh.online, fresh.lastSeenAt, fresh.live);
			for (const d of fresh.doors) this.updateDoor(d);
		} catch {
			/* the next poll or event tries again */
		}
	}

	show(cab) {
		this.cabinet = cab;
		this.tiles.clear();
		this.status = el("span", { class: "badge" });
		this.seen = el("span", { class: "muted" });
		const grid = el("div", { class: "doors", "data-cabinet-id": cab.id });
		for (const d of [...cab.doors].sort((a, b) => a.no - b.no)) {
			const tile = el("button", { class: "door", type: "button", "data-door-id": d.id, onclick: () => this.choose(d.id) });
			this.tiles.set(d.id, { tile, door: { ...d } });
			grid.append(tile);
			this.paint(d.id);
		}
		this.form = this.buildForm();
		this.root.replaceChildren(
			el("div", { class: "panel-head" },
				el("h2", {}, "柜组 Cabinet ", el("code", {}, cab.id)),
				el("button", { type: "button", class: "link", onclick: () => this.close(), "aria-label": "Close cabinet" }, "×")),
			el("div", { class: "cab-meta" }, this.status, " ", this.seen),
			grid,
			el("div", { class: "door-legend" }, ...Object.entries(STATE_WORDS).map(([s, w]) => el("span", { class: `chip st-${s}` }, w)), el("span", { class: "chip is-open" }, "门开 open")),
			this.form.root,
		);
		this.setOnline(cab.online, cab.lastSeenAt, cab.live);
	}

	setOnline(online, lastSeenAt, live = true) {
		if (!this.cabinet) return;
		this.cabinet.online = online;
		if (lastSeenAt !== undefined) this.cabinet.lastSeenAt = lastSeenAt;
		this.status.className = `badge ${live === false ? "unknown" : online ? "online" : "offline"}`;
		this.status.textContent = live === false ? "状态未知 live state unavailable" : online ? "在线 online" : "离线 offline";
		this.seen.textContent = `last seen ${ago(this.cabinet.lastSeenAt)}`;
		this.root.classList.toggle("is-offline", online === false);
	}

	/** A door's new state (an event's or a fresh read's); older versions are ignored when both carry one. */
	updateDoor(d) {
		const t = this.tiles.get(d.id ?? d.doorId);
		if (!t) return false;
		if (d.version !== undefined && t.door.version !== undefined && d.version < t.door.version) return false;
		for (const k of ["state", "open", "occupied", "orderId", "version", "disabled"]) if (k in d) t.door[k] = d[k];
		if (!("orderId" in d) && d.state === "available") delete t.door.orderId;
		this.paint(t.door.id);
		return true;
	}

	paint(doorId) {
		const { tile, door: d } = this.tiles.get(doorId);
		const state = d.state ?? "unknown";
		tile.className = `door st-${state}${d.open ? " is-open" : ""}${this.target === doorId ? " chosen" : ""}`;
		tile.dataset.state = state;
		tile.dataset.open = String(d.open === true);
		tile.dataset.occupied = String(d.occupied === true);
		tile.title = `${d.id} · ${STATE_WORDS[state] ?? "state unknown"}${d.orderId ? `\norder ${d.orderId}` : ""}\nclick to open remotely`;
		tile.replaceChildren(
			el("span", { class: "door-no" }, String(d.no).padStart(2, "0")),
			el("span", { class: "door-size" }, d.size),
			el("span", { class: "door-state" }, STATE_WORDS[state]?.split(" ")[1] ?? "unknown"),
			el("span", { class: "door-phys" }, d.open === null || d.open === undefined ? "—" : d.open ? "OPEN" : "closed", d.occupied ? " · bag" : ""),
		);
	}

	choose(doorId) {
		const prev = this.target;
		this.target = doorId;
		if (prev && this.tiles.has(prev)) this.paint(prev);
		this.paint(doorId);
		const d = this.tiles.get(doorId).door;
		this.form.label.textContent = `Door ${String(d.no).padStart(2, "0")} (${d.size})`;
		this.form.root.hidden = false;
		this.form.message.textContent = "";
		this.form.reason.focus({ preventScroll: true });
	}

	buildForm() {
		const reason = el("input", { name: "reason", id: "open-reason", required: true, minlength: 3, maxlength: 200, placeholder: "e.g. customer locked out, ticket #123", autocomplete: "off" });
		const button = el("button", { type: "submit", class: "danger" }, "远程开门 Open door");
		const message = el("p", { class: "form-message", role: "status" });
		const label = el("strong");
		const root = el("form", { class: "open-form", hidden: true, novalidate: true },
			el("div", {}, "Remote open ", label),
			el("label", { for: "open-reason" }, "Reason (goes to the audit log)"),
			el("div", { class: "row" }, reason, button),
			message);
		root.addEventListener("submit", async e => {
			e.preventDefault();
			const doorId = this.target;
			const text = reason.value.trim();
			if (!doorId || text.length < 3) {
				message.className = "form-message error";
				message.textContent = "Say why (at least 3 characters).";
				return;
			}
			button.disabled = true;
			message.className = "form-message";
			message.textContent = "Opening…";
			try {
				const door = await api("POST", `/doors/${encodeURIComponent(doorId)}/open`, { reason: text });
				if (door && typeof door === "object") this.updateDoor({ ...door, id: doorId });
				message.className = "form-message ok";
				message.textContent = `Door opened (${new Date().toLocaleTimeString()}).`;
				reason.value = "";
				this.onChanged?.();
			} catch (err) {
				message.className = "form-message error";
				message.textContent = `${err.type}: ${err.message}`;
			} finally {
				button.disabled = false;
			}
		});
		return { root, reason, message, label };
	}
}
