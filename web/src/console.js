// The console's message list, live: the server sends the newest rows (as the page's filters
// select them) whenever they change; rows are added or updated in place, newest first.
// Built with textContent only: nothing a message says becomes markup.

const table = document.querySelector('#messages[data-live="on"]');
const status = document.getElementById('live-status');

function cell(text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  td.textContent = text ?? '';
  return td;
}

function rowOf(m) {
  const tr = document.createElement('tr');
  tr.dataset.id = m.id;
  const tag = document.createElement('span');
  tag.className = `tag ${m.status}`;
  tag.textContent = m.status;
  const outcome = document.createElement('td');
  outcome.append(tag);
  const link = document.createElement('a');
  link.href = `/console/messages/${encodeURIComponent(m.id)}`;
  link.textContent = 'Details';
  const hidden = document.createElement('span');
  hidden.className = 'visually-hidden';
  hidden.textContent = ` of ${m.id}`;
  link.append(hidden);
  const go = document.createElement('td');
  go.append(link);
  tr.append(cell(m.received_at), cell(m.agency), cell(m.channel), outcome,
    cell(m.schema_id || m.rejection_code, 'break'), cell(m.agency_message_id, 'break'), go);
  return tr;
}

if (table) {
  const body = table.tBodies[0];
  const events = new EventSource('/console/events' + window.location.search);
  events.addEventListener('messages', (e) => {
    const rows = JSON.parse(e.data);
    let added = 0;
    // Oldest first, so each new row goes on top in the right order.
    for (const m of rows.slice().reverse()) {
      const fresh = rowOf(m);
      const old = body.querySelector(`tr[data-id="${CSS.escape(m.id)}"]`);
      if (old) {
        old.replaceWith(fresh);
      } else {
        body.prepend(fresh);
        added++;
      }
    }
    if (added && status) status.textContent = `${added} new message(s) arrived.`;
  });
  events.onerror = () => {
    if (status) status.textContent = 'Live updates paused: reconnecting…';
  };
}
