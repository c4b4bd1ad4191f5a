// A small SVG chart writer for the benchmark results: panels stacked on one shared x axis, each with lines
// and bars on a left axis, optionally bars or lines on a right axis, and vertical markers for events. Plain
// SVG 1.1: no script, no external font or stylesheet, a white background so that it reads the same in
// GitHub's light and dark modes.

const FONT = 'system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif'
const INK = '#1f2937'
const MUTED = '#6b7280'
const GRID = '#e5e7eb'

const MARGIN = { top: 16, right: 64, bottom: 46, left: 64 }
const TITLE_HEIGHT = 30
const LEGEND_ROW = 20
const PANEL_GAP = 50

/**
 * @typedef {object} Series
 * @property {string} name legend entry; series with the same name in several panels share one entry
 * @property {string} color
 * @property {'line' | 'bars'} type
 * @property {Array<[number, number]>} points x, y in data units; bars are centred on x
 * @property {number} [barWidth] bar width in x units (default: the smallest gap between points)
 *
 * @typedef {object} Axis
 * @property {string} label
 * @property {string} [color] of its label and ticks (the right axis takes its series' colour)
 * @property {Series[]} series
 *
 * @typedef {object} Marker
 * @property {number} x
 * @property {string} kind a key of `markerKinds`
 * @property {string} [label] a few characters above the line
 *
 * @typedef {object} Panel
 * @property {string} title
 * @property {Axis} left
 * @property {Axis} [right]
 * @property {Marker[]} [markers]
 *
 * @typedef {object} MarkerKind
 * @property {string} label legend text
 * @property {string} color
 * @property {string} [dash] an SVG stroke-dasharray
 */

/**
 * Renders the chart and returns the SVG document as a string. The left axes of all panels share one scale,
 * and so do the right axes, so panels compare by eye.
 *
 * @param {object} spec
 * @param {string} spec.title
 * @param {string} [spec.subtitle] one line under the title
 * @param {string} spec.xLabel
 * @param {Panel[]} spec.panels
 * @param {Record<string, MarkerKind>} [spec.markerKinds]
 * @param {number} [spec.xMax] end of the x axis (default: the largest x of any point or marker)
 * @param {number} [spec.width] px, default 960
 * @param {number} [spec.panelHeight] px of each panel's plot area, default 200
 */
export function chart ({ title, subtitle, xLabel, panels, markerKinds = {}, xMax, width = 960, panelHeight = 200 }) {
  const allSeries = panels.flatMap((p) => [...p.left.series, ...(p.right?.series ?? [])])
  const xs = [...allSeries.flatMap((s) => s.points.map(([x]) => x)), ...panels.flatMap((p) => (p.markers ?? []).map((m) => m.x))]
  const xAxis = niceAxis(xMax ?? Math.max(1, ...xs))
  const leftAxis = niceAxis(Math.max(1, ...panels.flatMap((p) => p.left.series.flatMap(yValues))))
  const rightAxis = niceAxis(Math.max(1, ...panels.flatMap((p) => (p.right?.series ?? []).flatMap(yValues))))

  const legend = legendEntries([...panels.flatMap((p) => p.left.series), ...panels.flatMap((p) => p.right?.series ?? [])], markerKinds)
  const plotWidth = width - MARGIN.left - MARGIN.right
  const legendRows = layoutLegend(legend, plotWidth)
  const headerHeight = MARGIN.top + TITLE_HEIGHT + (subtitle === undefined ? 0 : 18) + legendRows.length * LEGEND_ROW + 24
  const height = headerHeight + panels.length * (panelHeight + PANEL_GAP) - PANEL_GAP + MARGIN.bottom

  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family='${FONT}' font-size="12" fill="${INK}">`,
    `<title>${escape(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left}" y="${MARGIN.top + 18}" font-size="17" font-weight="600">${escape(title)}</text>`
  ]
  if (subtitle !== undefined) out.push(`<text x="${MARGIN.left}" y="${MARGIN.top + 38}" fill="${MUTED}">${escape(subtitle)}</text>`)

  let legendY = MARGIN.top + TITLE_HEIGHT + (subtitle === undefined ? 0 : 18) + 8
  for (const row of legendRows) {
    for (const { entry, x } of row) out.push(legendSwatch(entry, MARGIN.left + x, legendY))
    legendY += LEGEND_ROW
  }

  const scaleX = (x) => MARGIN.left + (x / xAxis.max) * plotWidth
  panels.forEach((panel, i) => {
    const top = headerHeight + i * (panelHeight + PANEL_GAP)
    out.push(renderPanel({ panel, top, plotWidth, panelHeight, xAxis, leftAxis, rightAxis, scaleX, markerKinds }))
  })
  const bottom = headerHeight + panels.length * (panelHeight + PANEL_GAP) - PANEL_GAP
  out.push(`<text x="${MARGIN.left + plotWidth / 2}" y="${bottom + 38}" text-anchor="middle" fill="${MUTED}">${escape(xLabel)}</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}

function renderPanel ({ panel, top, plotWidth, panelHeight, xAxis, leftAxis, rightAxis, scaleX, markerKinds }) {
  const left = MARGIN.left
  const bottom = top + panelHeight
  const scaleLeft = (y) => bottom - (y / leftAxis.max) * panelHeight
  const scaleRight = (y) => bottom - (y / rightAxis.max) * panelHeight
  const rightColor = panel.right?.color ?? panel.right?.series[0]?.color ?? MUTED
  const out = ['<g>']

  for (const tick of leftAxis.ticks) {
    const y = round(scaleLeft(tick))
    out.push(`<line x1="${left}" x2="${left + plotWidth}" y1="${y}" y2="${y}" stroke="${GRID}"/>`)
    out.push(`<text x="${left - 6}" y="${y + 4}" text-anchor="end" fill="${MUTED}">${formatTick(tick)}</text>`)
  }
  if (panel.right !== undefined) {
    for (const tick of rightAxis.ticks) {
      out.push(`<text x="${left + plotWidth + 6}" y="${round(scaleRight(tick)) + 4}" fill="${rightColor}">${formatTick(tick)}</text>`)
    }
    out.push(axisLabel(panel.right.label, left + plotWidth + 52, top + panelHeight / 2, 90, rightColor))
  }
  for (const tick of xAxis.ticks) {
    const x = round(scaleX(tick))
    out.push(`<line x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 4}" stroke="${MUTED}"/>`)
    out.push(`<text x="${x}" y="${bottom + 17}" text-anchor="middle" fill="${MUTED}">${formatTick(tick)}</text>`)
  }
  out.push(axisLabel(panel.left.label, left - 48, top + panelHeight / 2, -90, panel.left.color ?? MUTED))
  out.push(`<text x="${left + 6}" y="${top - 7}" font-weight="600">${escape(panel.title)}</text>`)

  for (const marker of panel.markers ?? []) {
    const kind = markerKinds[marker.kind] ?? { color: MUTED }
    const x = round(scaleX(marker.x))
    out.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${bottom}" stroke="${kind.color}" stroke-width="1.25"${kind.dash === undefined ? '' : ` stroke-dasharray="${kind.dash}"`}/>`)
    if (marker.label !== undefined) out.push(`<text x="${x + 2}" y="${top + 11}" font-size="10" fill="${kind.color}">${escape(marker.label)}</text>`)
  }
  for (const series of panel.right?.series ?? []) out.push(renderSeries(series, scaleX, scaleRight, bottom))
  for (const series of panel.left.series) out.push(renderSeries(series, scaleX, scaleLeft, bottom))

  out.push(`<rect x="${left}" y="${top}" width="${plotWidth}" height="${panelHeight}" fill="none" stroke="${MUTED}"/>`)
  out.push('</g>')
  return out.join('\n')
}

function renderSeries (series, scaleX, scaleY, bottom) {
  if (series.points.length === 0) return ''
  if (series.type === 'bars') {
    const barWidth = series.barWidth ?? smallestGap(series.points.map(([x]) => x))
    const pixels = Math.max(1.5, scaleX(barWidth) - scaleX(0))
    return series.points
      .filter(([, y]) => y > 0)
      .map(([x, y]) => `<rect x="${round(scaleX(x) - pixels / 2)}" y="${round(scaleY(y))}" width="${round(pixels)}" height="${round(bottom - scaleY(y))}" fill="${series.color}"/>`)
      .join('\n')
  }
  const points = series.points.map(([x, y]) => `${round(scaleX(x))},${round(scaleY(y))}`).join(' ')
  return `<polyline points="${points}" fill="none" stroke="${series.color}" stroke-width="1.5" stroke-linejoin="round"/>`
}

function legendEntries (series, markerKinds) {
  const seen = new Map()
  for (const s of series) if (!seen.has(s.name)) seen.set(s.name, { label: s.name, color: s.color, shape: s.type })
  for (const kind of Object.values(markerKinds)) seen.set(`marker ${kind.label}`, { label: kind.label, color: kind.color, shape: 'marker', dash: kind.dash })
  return [...seen.values()]
}

/** Entries left to right, wrapped to the plot width; text width estimated at 6.5 px a character. */
function layoutLegend (entries, maxWidth) {
  const rows = [[]]
  let x = 0
  for (const entry of entries) {
    const width = 24 + entry.label.length * 6.5 + 18
    if (x > 0 && x + width > maxWidth) {
      rows.push([])
      x = 0
    }
    rows.at(-1).push({ entry, x })
    x += width
  }
  return rows
}

function legendSwatch ({ label, color, shape, dash }, x, y) {
  const swatch = shape === 'bars'
    ? `<rect x="${x}" y="${y - 5}" width="18" height="10" fill="${color}"/>`
    : shape === 'marker'
      ? `<line x1="${x + 9}" x2="${x + 9}" y1="${y - 7}" y2="${y + 7}" stroke="${color}" stroke-width="1.5"${dash === undefined ? '' : ` stroke-dasharray="${dash}"`}/>`
      : `<line x1="${x}" x2="${x + 18}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2"/>`
  return `${swatch}<text x="${x + 24}" y="${y + 4}">${escape(label)}</text>`
}

function axisLabel (text, x, y, angle, color) {
  return `<text transform="translate(${round(x)} ${round(y)}) rotate(${angle})" text-anchor="middle" fill="${color}">${escape(text)}</text>`
}

/** An axis from 0 to a round number at or above `max`, with 4 to 8 ticks at 1, 2 or 5 × 10^n. */
export function niceAxis (max) {
  const rough = max / 5
  const power = 10 ** Math.floor(Math.log10(rough))
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)
  const top = Math.ceil(max / step - 1e-9) * step
  const ticks = []
  for (let i = 0; i * step <= top + step / 1e6; i++) ticks.push(Number((i * step).toPrecision(12)))
  return { max: top, ticks }
}

function yValues (series) {
  return series.points.map(([, y]) => y)
}

function smallestGap (xs) {
  let gap = Infinity
  for (let i = 1; i < xs.length; i++) gap = Math.min(gap, xs[i] - xs[i - 1])
  return Number.isFinite(gap) ? gap : 1
}

function formatTick (value) {
  return Math.abs(value) >= 10_000 ? `${Number((value / 1000).toPrecision(6))}k` : String(Number(value.toPrecision(6)))
}

const round = (n) => Math.round(n * 10) / 10

function escape (text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}
