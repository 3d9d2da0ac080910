/** Plain aligned text tables for benchmark reports. */

export interface Column {
	title: string;
	/** Numbers read best right-aligned. */
	align?: "left" | "right";
}

export function formatTable(columns: Column[], rows: string[][]): string {
	// Code points, not UTF-16 units, so that "≥" or "…" do not skew the widths.
	const len = (s: string) => [...s].length;
	const widths = columns.map((c, i) => Math.max(len(c.title), ...rows.map(r => len(r[i] ?? ""))));
	const line = (cells: string[]) =>
		cells
			.map((cell, i) => {
				const pad = " ".repeat(widths[i] - len(cell));
				return columns[i].align === "right" ? pad + cell : cell + pad;
			})
			.join("  ")
			.trimEnd();
	return [line(columns.map(c => c.title)), line(widths.map(w => "-".repeat(w))), ...rows.map(r => line(columns.map((_, i) => r[i] ?? "")))].join("\n");
}
