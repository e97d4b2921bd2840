// Every fixed text of the page, in Simplified Chinese and English (docs/web.md,
// "The page"). Data (ids, numbers, times, what the server sends) is never
// looked up here; the elements that hold it carry class "d".

const TEXT = {
  "app.title": ["社区防控值班台", "Cordon duty desk"],
  "nav.alerts": ["告警", "Alerts"],
  "nav.gates": ["门岗", "Gates"],
  "nav.zones": ["消杀", "Disinfection"],
  "nav.isolation": ["居家隔离", "Isolation"],
  "nav.needs": ["需求", "Needs"],
  "nav.report": ["日报", "Daily report"],
  "nav.main": ["页面", "Pages"],
  "lang.switch": ["English", "中文"],
  "lang.switch.label": ["切换语言", "Switch language"],
  "sound.on": ["声音：开", "Sound: on"],
  "sound.off": ["声音：关", "Sound: off"],
  "sound.label": ["告警声音", "Alert sound"],
  "sound.blocked": ["点页面任意处开启声音", "Click anywhere for sound"],
  "logout": ["退出", "Log out"],
  "site": ["小区", "Site"],
  "site.all": ["全部小区", "All sites"],
  "role.viewer": ["只读", "viewer"],
  "role.operator": ["值班员", "operator"],
  "role.admin": ["管理员", "admin"],
  "loading": ["正在加载…", "Loading…"],
  "none": ["暂无", "None"],
  "refresh": ["刷新", "Refresh"],
  "close": ["关闭", "Close"],
  "cancel": ["取消", "Cancel"],
  "more": ["更多", "More"],
  "search": ["查询", "Search"],
  "total": ["共 {n} 条", "{n} in all"],
  "skip": ["跳到内容", "Skip to content"],

  "login.title": ["值班登录", "Log in"],
  "login.name": ["用户名", "Name"],
  "login.password": ["密码", "Password"],
  "login.submit": ["登录", "Log in"],
  "login.bad": ["用户名或密码不对，请再试一次", "Wrong name or password; try again"],
  "login.locked": ["尝试次数太多，请 {m} 分钟后再试", "Too many tries: wait {m} minutes"],
  "login.empty": ["请填写用户名和密码", "Enter your name and password"],

  "err.offline": ["暂时无法连接，正在重试", "Cannot reach the server; retrying"],
  "err.forbidden": ["您没有权限做这件事", "You may not do this"],
  "err.notfound": ["没有找到", "Not found"],
  "err.other": ["出错了，请稍后再试", "Something went wrong; try again later"],
  "err.note_long": ["备注太长（最多 255 字节，约 85 个汉字）", "The note is too long (at most 255 bytes)"],

  "alerts.open": ["当前告警", "Open alerts"],
  "alerts.history": ["历史与查询", "History and search"],
  "alerts.none": ["目前没有未处理的告警", "No open alerts"],
  "alerts.live": ["实时更新中", "Live"],
  "alerts.reconnecting": ["正在重新连接…", "Reconnecting…"],
  "alerts.critical_banner": ["{n} 条严重告警未确认", "{n} critical alerts not acknowledged"],
  "alerts.see": ["查看", "See them"],
  "alerts.ack": ["确认", "Acknowledge"],
  "alerts.resolve": ["解除", "Resolve"],
  "alerts.details": ["详情", "Details"],
  "alerts.what": ["情况", "What"],
  "alerts.todo": ["处理：", "To do: "],
  "alerts.silenced": ["已静默，至 {until}", "Silenced until {until}"],
  "alerts.acked_by": ["已由 {by} 确认", "Acknowledged by {by}"],
  "alerts.count": ["触发 {n} 次", "triggered {n} times"],
  "alerts.raised_at": ["发生时间", "Raised"],
  "alerts.subject": ["对象", "Subject"],
  "alerts.note": ["备注（可不填）", "Note (optional)"],
  "alerts.ack.title": ["确认告警", "Acknowledge the alert"],
  "alerts.resolve.title": ["解除告警", "Resolve the alert"],
  "alerts.sent": ["已提交，等待系统更新", "Sent; waiting for the update"],
  "alerts.kind": ["类型", "Kind"],
  "alerts.kind.any": ["全部类型", "Any kind"],
  "alerts.from": ["开始日期", "From"],
  "alerts.to": ["结束日期", "To"],
  "alerts.transitions": ["经过", "Transitions"],
  "alerts.acks": ["确认与解除", "Acks and resolves"],
  "alerts.back": ["返回告警", "Back to alerts"],

  "sev.critical": ["严重", "critical"],
  "sev.warning": ["警告", "warning"],
  "sev.info": ["提示", "info"],
  "state.raised": ["未确认", "raised"],
  "state.acked": ["已确认", "acknowledged"],
  "state.resolved": ["已解除", "resolved"],
  "state.updated": ["有更新", "updated"],

  "gates.title": ["门岗", "Gates"],
  "gates.state.open": ["开放", "open"],
  "gates.state.sealed": ["封闭", "sealed"],
  "status.online": ["在线", "online"],
  "status.offline": ["离线", "offline"],
  "status.open": ["门开", "door open"],
  "status.closed": ["门关", "door closed"],
  "status.forced": ["强行开门", "forced"],
  "inactive": ["停用", "inactive"],

  "zones.title": ["今日消杀", "Disinfection today"],
  "zones.behind": ["未完成", "behind"],
  "isolation.title": ["居家隔离户", "Households in isolation"],
  "needs.title": ["居民需求", "Needs"],
  "needs.col.open": ["待分配", "Open"],
  "needs.col.assigned": ["已分配", "Assigned"],
  "needs.col.delivered": ["已送达", "Delivered"],
  "needs.assign": ["分配", "Assign"],
  "needs.deliver": ["标记送达", "Mark delivered"],
  "needs.volunteer": ["志愿者", "Volunteer"],
  "needs.overdue": ["已逾期", "overdue"],
  "needs.household": ["户 {h}", "household {h}"],

  "household.title": ["住户", "Household"],
  "household.info": ["登记信息", "Register"],

  "report.title": ["日报", "Daily report"],
  "report.date": ["日期", "Date"],
  "report.csv": ["下载 CSV 表格", "Download CSV"],
  "report.passes": ["每小时通行与发热", "Passes and fevers per hour"],
  "report.temps": ["体温分布", "Temperature distribution"],
  "report.disinfections": ["各区域消杀：完成与应做", "Disinfections per zone: done and due"],
  "report.hour": ["时", "hour"],
  "report.n": ["人次", "count"],
  "report.done": ["完成", "done"],
  "report.due": ["应做", "due"],
  "report.fevers": ["发热", "fevers"],
  "report.passes.s": ["通行", "passes"],

  // Column headings: the keys of the server's JSON (docs/web.md) and of
  // `cordonctl household --json` and `report daily`.
  "col.site": ["小区", "site"],
  "col.gate": ["门岗", "gate"],
  "col.state": ["状态", "state"],
  "col.status": ["设备状态", "status"],
  "col.status_at": ["状态时间", "status at"],
  "col.last_heard": ["最近消息", "last heard"],
  "col.passes_today": ["今日通行", "passes today"],
  "col.fevers_today": ["今日发热", "fevers today"],
  "col.format": ["设备型号", "format"],
  "col.zone": ["区域", "zone"],
  "col.per_day": ["每日次数", "a day"],
  "col.done": ["已完成", "done"],
  "col.due": ["应完成", "due"],
  "col.last_at": ["最近一次", "last"],
  "col.progress": ["进度", "progress"],
  "col.household": ["户", "household"],
  "col.building": ["楼栋", "building"],
  "col.unit": ["单元", "unit"],
  "col.room": ["房号", "room"],
  "col.size": ["人数", "size"],
  "col.phone": ["电话", "phone"],
  "col.timezone": ["时区", "time zone"],
  "col.persons": ["隔离人员", "persons"],
  "col.starts": ["开始", "starts"],
  "col.ends": ["结束", "ends"],
  "col.released": ["解除", "released"],
  "col.checks_today": ["今日打卡", "checks today"],
  "col.last_check_at": ["最近打卡", "last check"],
  "col.last_temp_c": ["最近体温", "last temp."],
  "col.calls_today": ["今日电话", "calls today"],
  "col.reached_today": ["今日接通", "reached today"],
  "col.open_needs": ["未办需求", "open needs"],
  "col.need_id": ["编号", "need"],
  "col.category": ["类别", "category"],
  "col.opened_at": ["提出时间", "opened"],
  "col.opened": ["提出", "opened"],
  "col.assigned_to": ["志愿者", "assigned to"],
  "col.assigned_at": ["分配时间", "assigned"],
  "col.delivered_at": ["送达时间", "delivered"],
  "col.delivered": ["送达", "delivered"],
  "col.delivered_by": ["送达人", "delivered by"],
  "col.cancelled": ["取消", "cancelled"],
  "col.note": ["备注", "note"],
  "col.person": ["人员", "person"],
  "col.name": ["姓名", "name"],
  "col.born": ["出生日期", "born"],
  "col.card": ["卡号", "card"],
  "col.extra": ["例外卡", "exception"],
  "col.reason": ["原因", "reason"],
  "col.id": ["编号", "no."],
  "col.ts": ["时间", "time"],
  "col.temp_c": ["体温 °C", "temp. °C"],
  "col.symptoms": ["症状", "symptoms"],
  "col.outcome": ["结果", "outcome"],
  "col.by": ["经办人", "by"],
  "col.action": ["动作", "action"],
  "col.item": ["物品", "item"],
  "col.direction": ["方向", "direction"],
  "col.mask": ["口罩", "mask"],
  "col.raised": ["发生时间", "raised"],
  "col.kind": ["类型", "kind"],
  "col.severity": ["级别", "severity"],
  "col.subject": ["对象", "subject"],
  "col.count": ["次数", "count"],
  "col.alert_id": ["告警编号", "alert"],
  "col.transition": ["经过", "transition"],
  "col.at": ["时间", "at"],
  "col.passes": ["通行", "passes"],
  "col.screened": ["测温", "screened"],
  "col.fevers": ["发热", "fevers"],
  "col.implausible": ["读数异常", "implausible"],
  "col.out": ["外出", "out"],
  "col.clock_skew": ["时钟偏差", "clock skew"],
  "col.disinfections": ["消杀次数", "disinfections"],
  "col.last": ["最近", "last"],
  "col.expected": ["应做", "expected"],
  "col.checks": ["打卡", "checks"],
  "col.febrile": ["发热", "febrile"],
  "col.with_symptoms": ["有症状", "with symptoms"],
  "col.hours": ["小时", "hours"],
  "col.missing": ["缺少", "missing"],
  "col.calls": ["电话", "calls"],
  "col.reached": ["接通", "reached"],
  "col.needs_help": ["需帮助", "needs help"],
  "col.counselling": ["心理疏导", "counselling"],
  "col.overdue": ["逾期", "overdue"],
  "col.open": ["未办", "open"],
  "col.median_min_to_deliver": ["送达用时中位数（分）", "median min. to deliver"],
  "col.placed": ["放置", "placed"],
  "col.collected": ["已取", "collected"],
  "col.uncollected": ["未取", "uncollected"],
  "col.cards": ["卡数", "cards"],
  "col.households": ["户数", "households"],
  "col.urgent": ["紧急", "urgent"],
  "col.resolved": ["办结", "resolved"],
  "col.median_min_to_resolve": ["办结用时中位数（分）", "median min. to resolve"],
  "col.critical": ["严重", "critical"],
  "col.triggers": ["触发", "triggers"],
  "col.rejects": ["拒收", "rejects"],
  "col.active": ["生效", "active"],
  "col.total": ["总数", "total"],

  // Sections of the household page and of the daily report.
  "sec.residents": ["住户成员", "Residents"],
  "sec.cards": ["门禁卡", "Cards"],
  "sec.isolation_orders": ["隔离令", "Isolation orders"],
  "sec.isolation_checks": ["健康打卡", "Health checks"],
  "sec.welfare_calls": ["关怀电话", "Welfare calls"],
  "sec.needs": ["需求", "Needs"],
  "sec.dropoffs": ["物资放置", "Drop-offs"],
  "sec.passes": ["通行记录", "Passes"],
  "sec.alerts": ["告警", "Alerts"],
  "sec.gates": ["门岗", "Gates"],
  "sec.zones": ["消杀区域", "Disinfection zones"],
  "sec.isolation": ["居家隔离打卡", "Home isolation checks"],
  "sec.health_checks": ["每人健康打卡：应做与完成", "Health checks, due and done per isolated person"],
  "sec.welfare": ["每户关怀电话：应打与接通", "Welfare calls, due and reached per household"],
  "sec.exception_cards": ["例外卡", "Exception cards"],
  "sec.hotline": ["热线来电", "Hotline calls"],
  "sec.rejects": ["拒收的消息", "Rejected payloads"],
  "sec.shown": ["显示最近 {n} 条", "the last {n} shown"],

  // Values the server sends as words.
  "val.true": ["是", "yes"],
  "val.false": ["否", "no"],
  "val.in": ["进", "in"],
  "val.out": ["出", "out"],
  "val.active": ["有效", "active"],
  "val.revoked": ["已注销", "revoked"],
  "val.lost": ["已挂失", "lost"],
  "val.released": ["已解除", "released"],
  "val.ended": ["已结束", "ended"],
  "val.open": ["待分配", "open"],
  "val.assigned": ["已分配", "assigned"],
  "val.delivered": ["已送达", "delivered"],
  "val.cancelled": ["已取消", "cancelled"],
  "val.reached": ["已接通", "reached"],
  "val.no_answer": ["无人接听", "no answer"],
  "val.needs_help": ["需要帮助", "needs help"],
  "val.counselling": ["心理疏导", "counselling"],
  "val.placed": ["已放置", "placed"],
  "val.collected": ["已取走", "collected"],
  "val.groceries": ["生活物资", "groceries"],
  "val.medicine": ["药品", "medicine"],
  "val.elderly_care": ["老人照护", "elderly care"],
  "val.other": ["其他", "other"],
  "val.raised": ["未确认", "raised"],
  "val.acked": ["已确认", "acknowledged"],
  "val.resolved": ["已解除", "resolved"],
  "val.updated": ["有更新", "updated"],
  "val.ack": ["确认", "ack"],
  "val.resolve": ["解除", "resolve"],
  "val.critical": ["严重", "critical"],
  "val.warning": ["警告", "warning"],
  "val.sealed": ["封闭", "sealed"],
  "val.online": ["在线", "online"],
  "val.offline": ["离线", "offline"],
  "val.forced": ["强行开门", "forced"],
  "val.closed": ["门关", "closed"],

  // Alert kinds (the labels of cordon-notify's table, include/notifier_text.h)
  "kind.fever": ["发热", "fever"],
  "kind.isolation_overdue": ["隔离打卡逾期", "isolation check overdue"],
  "kind.isolation_symptom": ["隔离人员有症状", "isolation symptoms"],
  "kind.isolation_breach": ["隔离户外出", "isolation breach"],
  "kind.sealed_gate": ["封闭门岗通行", "sealed gate traffic"],
  "kind.gate_silent": ["门岗设备无消息", "gate terminal silent"],
  "kind.unknown_card": ["未登记卡", "unknown card"],
  "kind.exit_quota": ["外出超次数", "exit quota exceeded"],
  "kind.disinfection_overdue": ["消杀逾期", "disinfection overdue"],
  "kind.hotline_unresolved": ["热线紧急求助未办结", "urgent hotline call open"],
  "kind.backlog": ["告警服务积压", "backlog"],
  "kind.client_id_conflict": ["连接编号冲突", "client id conflict"],
  "kind.card_exception": ["一户多卡", "too many cards"],
  "kind.need_overdue": ["居民需求逾期", "need overdue"],
  "kind.call_missed": ["关怀电话未接通", "welfare call missed"],
  "kind.dropoff_uncollected": ["物资未取", "delivery uncollected"],
  "kind.notify_failed": ["通知发送失败", "notifications failing"],
};

export const KINDS = Object.keys(TEXT).filter((k) => k.startsWith("kind.")).map((k) => k.slice(5));
export const LANGS = ["zh-CN", "en"];

let lang = pick();

function pick() {
  const saved = localStorage.getItem("cordon.lang");
  if (LANGS.includes(saved)) return saved;
  for (const l of navigator.languages || [navigator.language || ""]) {
    if (/^zh/i.test(l)) return "zh-CN";
    if (/^en/i.test(l)) return "en";
  }
  return "zh-CN";
}

export function getLang() {
  return lang;
}

export function setLang(l) {
  lang = LANGS.includes(l) ? l : "zh-CN";
  localStorage.setItem("cordon.lang", lang);
  document.documentElement.lang = lang;
}

// The text of key in the page's language, {name} replaced from vars.
export function t(key, vars) {
  const row = TEXT[key];
  let s = row ? row[lang === "en" ? 1 : 0] : key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

export function has(key) {
  return key in TEXT;
}

// Fill the fixed elements of index.html: data-i18n (text), data-i18n-label
// (aria-label), data-i18n-placeholder, data-i18n-title.
export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]"))
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]"))
    el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
  for (const el of root.querySelectorAll("[data-i18n-title]"))
    el.setAttribute("title", t(el.dataset.i18nTitle));
}

document.documentElement.lang = lang;
