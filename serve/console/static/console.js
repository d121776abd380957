// Earshot moderator console: the live queue (server-sent events), keyboard
// triage, actions with a note, and seeking the evidence from the
// transcript. No dependencies; loaded as a file (the CSP forbids inline
// script).
(function () {
  'use strict';
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : '';
  var live = document.getElementById('live');
  var alertEl = document.getElementById('alert');
  var selected = null;

  function rows() { return Array.prototype.slice.call(document.querySelectorAll('#queue tbody tr[data-id]')); }

  function select(tr) {
    rows().forEach(function (r) { r.classList.remove('selected'); r.removeAttribute('aria-current'); });
    if (!tr) { selected = null; return; }
    tr.classList.add('selected');
    tr.setAttribute('aria-current', 'true');
    selected = tr.dataset.id;
    tr.scrollIntoView({ block: 'nearest' });
  }

  function restore() {
    var r = rows();
    var keep = r.filter(function (x) { return x.dataset.id === selected; })[0];
    select(keep || r[0]);
  }

  // follow subscribes el to its data-stream: each event of that name
  // replaces its content with the server's rendering.
  function follow(el, name, after) {
    var state = document.getElementById('live-state');
    var es = new EventSource(el.dataset.stream);
    es.onopen = function () { state.textContent = 'Live: connected'; };
    es.onerror = function () { state.textContent = 'Live: reconnecting…'; };
    es.addEventListener(name, function (ev) {
      el.innerHTML = ev.data;
      if (after) { after(); }
      state.textContent = 'Live: updated ' + new Date().toLocaleTimeString();
    });
  }

  if (live) {
    restore();
    follow(live, 'queue', restore);
    live.addEventListener('click', function (ev) {
      var tr = ev.target.closest('tr[data-id]');
      if (tr) { select(tr); }
    });
  }

  // A live room: speakers and transcript, re-rendered by the server.
  var roomLive = document.getElementById('room-live');
  if (roomLive) { follow(roomLive, 'room'); }

  // Actions: a dialog asks for the note, then the action is posted with
  // the session's CSRF token.
  var dialog = document.getElementById('act-dialog');
  var pending = null;
  var names = { ack: 'Acknowledge', confirm: 'Confirm', dismiss: 'Dismiss' };

  function currentAlert() { return alertEl ? alertEl.dataset.alert : selected; }

  function openAction(action) {
    var id = currentAlert();
    if (!dialog || !id) { return; }
    pending = { id: id, action: action };
    document.getElementById('act-title').textContent = names[action] + ' the alert';
    document.getElementById('act-ok').textContent = names[action];
    document.getElementById('act-error').textContent = '';
    document.getElementById('act-note').value = '';
    dialog.showModal();
    document.getElementById('act-note').focus();
  }

  if (dialog) {
    document.getElementById('act-cancel').addEventListener('click', function () { dialog.close(); });
    document.getElementById('act-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var p = pending;
      if (!p) { return; }
      var body = new URLSearchParams({ action: p.action, note: document.getElementById('act-note').value });
      fetch('/console/alerts/' + encodeURIComponent(p.id) + '/actions', {
        method: 'POST', credentials: 'same-origin', body: body,
        headers: { 'X-CSRF-Token': csrf, 'Accept': 'application/json' }
      }).then(function (resp) {
        return resp.json().then(function (j) { return { ok: resp.ok, j: j }; });
      }).then(function (res) {
        if (!res.ok) { document.getElementById('act-error').textContent = res.j.error || 'The action failed.'; return; }
        dialog.close();
        if (alertEl) { location.reload(); return; }
        var tr = document.querySelector('#queue tr[data-id="' + p.id + '"] .status');
        if (tr) { tr.textContent = res.j.status; }
      }).catch(function () { document.getElementById('act-error').textContent = 'The server did not answer; try again.'; });
    });
  }

  document.addEventListener('keydown', function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.target.closest('input, textarea, select, dialog')) { return; }
    var r = rows();
    var i = r.findIndex(function (x) { return x.dataset.id === selected; });
    switch (ev.key) {
      case 'j': if (r.length) { select(r[Math.min(i + 1, r.length - 1)]); } break;
      case 'k': if (r.length) { select(r[Math.max(i - 1, 0)]); } break;
      case 'Enter':
        if (!live || !selected || ev.target.closest('a, button')) { return; }
        location.href = '/console/alerts/' + encodeURIComponent(selected);
        break;
      case 'a': openAction('ack'); break;
      case 'c': openAction('confirm'); break;
      case 'd': openAction('dismiss'); break;
      default: return;
    }
    ev.preventDefault();
  });

  // Seeking: a transcript line's time button plays the evidence from there.
  var player = document.getElementById('player');
  if (player) {
    document.querySelectorAll('button.seek').forEach(function (b) {
      b.addEventListener('click', function () {
        player.currentTime = parseFloat(b.dataset.offset);
        player.play();
      });
    });
  }
})();
