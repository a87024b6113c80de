// Charts drawn as plain SVG: ratings distribution, feedback over time, hotspots.
// Each chart is an image with a text alternative (title + description) for screen readers.

import { RATINGS, RATING_LABEL } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
export const RATING_COLOR = { love: '#c026d3', like: '#16a34a', meh: '#d97706', no: '#dc2626', none: '#94a3b8' };
// Worst first when ordering by rating: "no" is 0, "love" is 3.
const RATING_SCORE = { no: 0, meh: 1, like: 2, love: 3 };

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, value);
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

let chartCount = 0;
function frame(width, height, title, description) {
  chartCount += 1;
  const id = 'chart' + chartCount;
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}t ${id}d`, class: 'chart' },
    svg('title', { id: id + 't' }, title), svg('desc', { id: id + 'd' }, description));
}

export function ratingCounts(spikes) {
  const counts = { love: 0, like: 0, meh: 0, no: 0, none: 0 };
  for (const spike of spikes) counts[RATINGS.includes(spike.rating) ? spike.rating : 'none'] += 1;
  return counts;
}

export function ratingsChart(spikes) {
  const counts = ratingCounts(spikes);
  const keys = [...RATINGS, 'none'];
  const total = spikes.length || 1;
  const max = Math.max(1, ...keys.map((key) => counts[key]));
  const rowHeight = 28;
  const chart = frame(320, keys.length * rowHeight + 4, 'Ratings distribution',
    keys.map((key) => `${RATING_LABEL[key]}: ${counts[key]}`).join(', '));
  keys.forEach((key, index) => {
    const y = index * rowHeight + 4;
    const width = Math.round((counts[key] / max) * 190);
    chart.append(
      svg('text', { x: 0, y: y + 16, class: 'label' }, RATING_LABEL[key]),
      svg('rect', { x: 78, y, width: Math.max(width, counts[key] ? 2 : 0), height: 20, rx: 3, fill: RATING_COLOR[key] }),
      svg('text', { x: 78 + width + 6, y: y + 16, class: 'value' },
        `${counts[key]} (${Math.round((counts[key] / total) * 100)}%)`),
    );
  });
  return chart;
}

function dayOf(spike) {
  const date = new Date(spike.timestamp);
  return Number.isNaN(date.getTime()) ? null : date.toISOString().slice(0, 10);
}

// Spikes per day from the first to the last day with feedback (per week past 60 days).
export function timeBuckets(spikes) {
  const days = spikes.map(dayOf).filter(Boolean).sort();
  if (!days.length) return [];
  const first = new Date(days[0] + 'T00:00:00Z');
  const last = new Date(days[days.length - 1] + 'T00:00:00Z');
  const spanDays = Math.round((last - first) / 86400000) + 1;
  const step = spanDays > 60 ? 7 : 1;
  const buckets = [];
  for (let offset = 0; offset < spanDays; offset += step) {
    buckets.push({ start: new Date(first.getTime() + offset * 86400000).toISOString().slice(0, 10), count: 0 });
  }
  for (const day of days) {
    const index = Math.floor(Math.round((new Date(day + 'T00:00:00Z') - first) / 86400000) / step);
    buckets[index].count += 1;
  }
  return buckets.map((bucket) => ({ ...bucket, step }));
}

export function timelineChart(spikes) {
  const buckets = timeBuckets(spikes);
  const width = 320;
  const height = 150;
  const unit = buckets.length && buckets[0].step === 7 ? 'week' : 'day';
  const chart = frame(width, height, `Feedback per ${unit}`,
    buckets.length ? buckets.map((b) => `${b.start}: ${b.count}`).join(', ') : 'No feedback yet');
  if (!buckets.length) {
    chart.append(svg('text', { x: 0, y: 20, class: 'label' }, 'No feedback yet'));
    return chart;
  }
  const max = Math.max(...buckets.map((bucket) => bucket.count));
  const plotTop = 18;
  const plotHeight = height - plotTop - 22;
  const barWidth = (width - 30) / buckets.length;
  chart.append(svg('text', { x: 0, y: 12, class: 'value' }, `max ${max}`));
  buckets.forEach((bucket, index) => {
    const barHeight = Math.max(bucket.count ? 2 : 0, Math.round((bucket.count / max) * plotHeight));
    chart.append(svg('rect', {
      x: 30 + index * barWidth + 1, y: plotTop + plotHeight - barHeight,
      width: Math.max(1, barWidth - 2), height: barHeight, fill: '#4f46e5', rx: 2,
    }, svg('title', {}, `${bucket.start}: ${bucket.count}`)));
  });
  chart.append(
    svg('line', { x1: 30, x2: width, y1: plotTop + plotHeight, y2: plotTop + plotHeight, stroke: '#cbd5e1' }),
    svg('text', { x: 30, y: height - 4, class: 'label' }, buckets[0].start),
    svg('text', { x: width, y: height - 4, class: 'label', 'text-anchor': 'end' }, buckets[buckets.length - 1].start),
  );
  return chart;
}

// Elements with the most feedback; among equally busy ones, the worst rated first.
export function hotspots(spikes, limit = 8) {
  const spots = new Map();
  for (const spike of spikes) {
    if (!spike.selector) continue;
    const key = `${spike.page || ''}\u0000${spike.selector}`;
    const spot = spots.get(key) || { page: spike.page || '', selector: spike.selector, count: 0, rated: 0, score: 0,
      ratings: { love: 0, like: 0, meh: 0, no: 0, none: 0 }, text: spike.elementText || '' };
    spot.count += 1;
    const rating = RATINGS.includes(spike.rating) ? spike.rating : 'none';
    spot.ratings[rating] += 1;
    if (rating !== 'none') { spot.rated += 1; spot.score += RATING_SCORE[rating]; }
    spots.set(key, spot);
  }
  const average = (spot) => (spot.rated ? spot.score / spot.rated : 1.5);
  return [...spots.values()]
    .sort((a, b) => b.count - a.count || average(a) - average(b) || a.selector.localeCompare(b.selector))
    .slice(0, limit)
    .map((spot) => ({ ...spot, average: spot.rated ? average(spot) : null, worst: worstRating(spot) }));
}

function worstRating(spot) {
  return ['no', 'meh', 'like', 'love'].find((rating) => spot.ratings[rating]) || 'none';
}

export function hotspotsChart(spots) {
  const rowHeight = 40;
  const width = 320;
  const chart = frame(width, Math.max(1, spots.length) * rowHeight + 4, 'Hotspots: elements with the most feedback',
    spots.length ? spots.map((spot) => `${spot.selector} on ${spot.page || '/'}: ${spot.count} (` +
      [...RATINGS, 'none'].filter((r) => spot.ratings[r]).map((r) => `${spot.ratings[r]} ${RATING_LABEL[r]}`).join(', ') + ')').join('; ')
      : 'No element feedback yet');
  if (!spots.length) {
    chart.append(svg('text', { x: 0, y: 20, class: 'label' }, 'No element feedback yet'));
    return chart;
  }
  const max = Math.max(...spots.map((spot) => spot.count));
  spots.forEach((spot, index) => {
    const y = index * rowHeight + 4;
    const full = spot.page ? `${spot.selector} · ${spot.page}` : spot.selector;
    const label = full.length > 44 ? full.slice(0, 43) + '…' : full;
    chart.append(svg('text', { x: 0, y: y + 11, class: 'label mono' }, label));
    let x = 0;
    for (const rating of ['no', 'meh', 'like', 'love', 'none']) {
      const part = (spot.ratings[rating] / max) * (width - 40);
      if (part > 0) chart.append(svg('rect', { x, y: y + 16, width: part, height: 16, fill: RATING_COLOR[rating] },
        svg('title', {}, `${spot.ratings[rating]} ${RATING_LABEL[rating]}`)));
      x += part;
    }
    chart.append(svg('text', { x: x + 6, y: y + 29, class: 'value' }, String(spot.count)));
  });
  return chart;
}

// The share page with the hotspots outlined: the widget reads this fragment (never sent to
// the server) and draws a numbered outline around each element.
export function highlightFragment(spots) {
  const compact = spots.map((spot) => ({ s: spot.selector, p: spot.page, n: spot.count, r: spot.worst }));
  return '#spikes-hotspots=' + encodeURIComponent(JSON.stringify(compact));
}
