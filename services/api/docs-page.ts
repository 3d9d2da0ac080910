/**
 * GET /api/docs: a readable page of the OpenAPI document, self-contained (no CDN, no
 * library): docs-page.html's inline script fetches /api/openapi.json and renders the routes
 * by tag. Its Content-Security-Policy allows exactly that page's one inline script and one
 * inline style (by hash) and fetches from this origin; everything else stays refused.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const html = fs.readFileSync(path.join(__dirname, "docs-page.html"), "utf8");

const hashOf = (tag: "script" | "style"): string => {
	const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(html);
	if (!m) throw new Error(`docs-page.html has no inline <${tag}>`);
	return `'sha256-${crypto.createHash("sha256").update(m[1]).digest("base64")}'`;
};

export const DOCS_PAGE = Buffer.from(html, "utf8");

export const DOCS_PAGE_CSP = [
	"default-src 'none'",
	`script-src ${hashOf("script")}`,
	`style-src ${hashOf("style")}`,
	"connect-src 'self'",
	"base-uri 'none'",
	"form-action 'none'",
	"frame-ancestors 'none'",
].join("; ");
