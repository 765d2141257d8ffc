// Layout of the status area: a header, a table of certificate records and a
// table of issuer records, each found by a hash of its id and a copy of it.
#include "status_board.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "shm_area.h"

namespace acme {

namespace {

constexpr std::uint32_t magic_value = 0x41435354;  // "ACST"
constexpr std::uint32_t layout_version =
    3;  // 2: IssuerSlot::dns_persist; 3: hashed certificate slots

struct StatusHeader {
    std::uint32_t magic;
    std::uint32_t version;
    std::uint64_t size;
    std::atomic<std::uint64_t> lock;  // see SpinGuard
    std::uint32_t reserved;
    std::atomic<std::uint64_t> epoch;
    std::atomic<std::uint64_t> requests;  // bumped by every renew-now
    std::uint64_t certificate_slots;
    std::uint64_t issuer_slots;
};

template <std::size_t N>
struct Text {
    std::uint32_t len;
    char data[N];

    void set(std::string_view s) {
        len = static_cast<std::uint32_t>(std::min(s.size(), N));
        std::memcpy(data, s.data(), len);
    }
    std::string get() const { return std::string(data, std::min<std::size_t>(len, N)); }
};

struct CertificateSlot {
    std::uint32_t in_use;
    std::uint32_t flags;
    std::uint64_t id_hash;
    Text<StatusBoard::max_id> id;
    std::int64_t not_before, not_after, renew_at, ari_start, ari_end;
    std::int64_t last_attempt, next_attempt, error_at, renew_requested;
    std::int32_t attempts;
    std::uint32_t reserved;
    Text<16> key_type;
    Text<64> serial;
    Text<64> sha256;
    Text<32> renew_reason;
    Text<StatusBoard::max_url> ari_explanation_url;
    Text<StatusBoard::max_error_type> error_type;
    Text<StatusBoard::max_error_detail> error_detail;
};

constexpr std::uint32_t has_cert = 1, has_ari = 2, renewing = 4, has_error = 8;

struct IssuerSlot {
    std::uint32_t in_use;
    std::uint32_t reserved;
    std::uint64_t name_hash;
    Text<StatusBoard::max_issuer> name;
    Text<StatusBoard::max_url> account;
    Text<16> state;
    Text<StatusBoard::max_error_detail> error;
    std::int64_t retry_after;
    std::uint64_t orders_issued, orders_failed;
    std::uint64_t challenges[static_cast<int>(ChallengeCounter::count)];
    Text<16> storage;
    Text<16> storage_state;
    Text<StatusBoard::max_dns_persist> dns_persist;  // see pack_records
};

constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
constexpr std::size_t header_size = align_up(sizeof(StatusHeader), 64);

CertificateSlot* certificates(void* base) {
    return reinterpret_cast<CertificateSlot*>(static_cast<char*>(base) + header_size);
}

IssuerSlot* issuers(void* base, std::uint64_t certificate_slots) {
    return reinterpret_cast<IssuerSlot*>(static_cast<char*>(base) + header_size +
                                         align_up(certificate_slots * sizeof(CertificateSlot), 64));
}

// Records as "name\ttype\tvalue\n" lines (DNS names and TXT values of
// dns-persist-01 hold neither tabs nor newlines); whole records only.
std::string pack_records(const std::vector<DnsRecord>& records) {
    std::string out;
    for (const DnsRecord& r : records) {
        std::string line = r.name + '\t' + r.type + '\t' + r.value + '\n';
        if (out.size() + line.size() > StatusBoard::max_dns_persist) break;
        out += line;
    }
    return out;
}

std::vector<DnsRecord> unpack_records(const std::string& text) {
    std::vector<DnsRecord> records;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string::npos) break;
        std::string line = text.substr(pos, end - pos);
        pos = end + 1;
        std::size_t a = line.find('\t');
        std::size_t b = a == std::string::npos ? a : line.find('\t', a + 1);
        if (b == std::string::npos) continue;
        records.push_back({line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)});
    }
    return records;
}

void load(const CertificateSlot& s, CertificateStatus& st) {
    st.id = s.id.get();
    st.key_type = s.key_type.get();
    st.has_cert = (s.flags & has_cert) != 0;
    st.not_before = s.not_before;
    st.not_after = s.not_after;
    st.serial = s.serial.get();
    st.sha256 = s.sha256.get();
    st.renew_at = s.renew_at;
    st.renew_reason = s.renew_reason.get();
    st.has_ari = (s.flags & has_ari) != 0;
    st.ari_start = s.ari_start;
    st.ari_end = s.ari_end;
    st.ari_explanation_url = s.ari_explanation_url.get();
    st.renewing = (s.flags & renewing) != 0;
    st.last_attempt = s.last_attempt;
    st.next_attempt = s.next_attempt;
    st.attempts = s.attempts;
    st.has_error = (s.flags & has_error) != 0;
    st.error_type = s.error_type.get();
    st.error_detail = s.error_detail.get();
    st.error_at = s.error_at;
    st.renew_requested = s.renew_requested;
}

void store(CertificateSlot& s, const CertificateStatus& st) {
    s.flags = (st.has_cert ? has_cert : 0) | (st.has_ari ? has_ari : 0) |
              (st.renewing ? renewing : 0) | (st.has_error ? has_error : 0);
    s.key_type.set(st.key_type);
    s.not_before = st.not_before;
    s.not_after = st.not_after;
    s.serial.set(st.serial);
    s.sha256.set(st.sha256);
    s.renew_at = st.renew_at;
    s.renew_reason.set(st.renew_reason);
    s.ari_start = st.ari_start;
    s.ari_end = st.ari_end;
    s.ari_explanation_url.set(st.ari_explanation_url);
    s.last_attempt = st.last_attempt;
    s.next_attempt = st.next_attempt;
    s.attempts = st.attempts;
    s.error_type.set(st.error_type);
    s.error_detail.set(st.error_detail);
    s.error_at = st.error_at;
    s.renew_requested = st.renew_requested;
}

void load(const IssuerSlot& s, IssuerStatus& st) {
    st.name = s.name.get();
    st.account = s.account.get();
    st.state = s.state.get();
    st.error = s.error.get();
    st.retry_after = s.retry_after;
    st.orders_issued = s.orders_issued;
    st.orders_failed = s.orders_failed;
    std::copy(std::begin(s.challenges), std::end(s.challenges), std::begin(st.challenges));
    st.storage = s.storage.get();
    st.storage_state = s.storage_state.get();
    st.dns_persist = unpack_records(s.dns_persist.get());
}

void store(IssuerSlot& s, const IssuerStatus& st) {
    s.account.set(st.account);
    s.state.set(st.state);
    s.error.set(st.error);
    s.retry_after = st.retry_after;
    s.orders_issued = st.orders_issued;
    s.orders_failed = st.orders_failed;
    std::copy(std::begin(st.challenges), std::end(st.challenges), std::begin(s.challenges));
    s.storage.set(st.storage);
    s.storage_state.set(st.storage_state);
    s.dns_persist.set(pack_records(st.dns_persist));
}

template <typename Slot, typename Name>
bool holds(const Slot& s, Name Slot::*name, std::string_view key, std::uint64_t hash) {
    auto& text = s.*name;
    return reinterpret_cast<const std::uint64_t*>(&s)[1] == hash &&
           text.len == std::min(key.size(), sizeof(text.data)) &&
           std::memcmp(text.data, key.data(), text.len) == 0;
}

template <typename Slot, typename Name>
Slot* claim_slot(Slot* free, Name Slot::*name, std::string_view key, std::uint64_t hash) {
    std::memset(static_cast<void*>(free), 0, sizeof(Slot));
    free->in_use = 1;
    reinterpret_cast<std::uint64_t*>(free)[1] = hash;
    (free->*name).set(key);
    return free;
}

// The issuer slot of `key`, or a free one when `claim`; null when neither.
// Issuers are few and leave the table one by one: a plain scan.
template <typename Slot, typename Name>
Slot* find(Slot* table, std::uint64_t n, Name Slot::*name, std::string_view key, bool claim) {
    std::uint64_t hash = fnv1a(key);
    Slot* free = nullptr;
    for (std::uint64_t i = 0; i < n; i++) {
        Slot& s = table[i];
        if (!s.in_use) {
            if (free == nullptr) free = &s;
        } else if (holds(s, name, key, hash)) {
            return &s;
        }
    }
    return claim && free != nullptr ? claim_slot(free, name, key, hash) : nullptr;
}

// The certificate slot of `key`: open addressing with linear probing from
// the key's hash, so that a lookup costs the same at 10,000 certificates
// as at 10 (each status update of the engine, each renew-now request and
// each certificate of a status page is one). Certificates leave the table
// only all at once (renew_epoch), so a free slot ends every probe, and a
// third of the slots stays free (certificate_slots_for).
CertificateSlot* find_certificate(CertificateSlot* table, std::uint64_t n, std::string_view key,
                                  bool claim) {
    std::uint64_t hash = fnv1a(key);
    for (std::uint64_t i = 0, at = hash % n; i < n; i++, at = at + 1 == n ? 0 : at + 1) {
        CertificateSlot& s = table[at];
        if (!s.in_use) {
            return claim ? claim_slot(&s, &CertificateSlot::id, key, hash) : nullptr;
        }
        if (holds(s, &CertificateSlot::id, key, hash)) return &s;
    }
    return nullptr;
}

std::uint64_t certificate_slots_for(std::size_t certificates) {
    return std::max<std::size_t>(certificates, 1) * 3 / 2 + 1;
}

}  // namespace

struct StatusBoard::Header : StatusHeader {};

static_assert(offsetof(CertificateSlot, id_hash) == 8 && offsetof(IssuerSlot, name_hash) == 8,
              "find() reads the hash at offset 8");

std::size_t StatusBoard::size_for(std::size_t certificates, std::size_t issuers) {
    // Never empty: a configuration can grow by a reload into a new area.
    certificates = std::max<std::size_t>(certificates, 1);
    issuers = std::max<std::size_t>(issuers, 1);
    return header_size +
           align_up(certificate_slots_for(certificates) * sizeof(CertificateSlot), 64) +
           issuers * sizeof(IssuerSlot);
}

StatusBoard::StatusBoard(void* base, std::size_t size) : base_(base), size_(size) {}

StatusBoard::Header* StatusBoard::header() const { return static_cast<Header*>(base_); }

void StatusBoard::format(std::size_t certificate_count, std::size_t issuer_count) {
    std::memset(base_, 0, size_);
    Header* h = header();
    h->magic = magic_value;
    h->version = layout_version;
    h->size = size_;
    h->certificate_slots = certificate_slots_for(certificate_count);
    h->issuer_slots = std::max<std::size_t>(issuer_count, 1);
    h->epoch.store(1);
}

bool StatusBoard::formatted() const {
    const Header* h = header();
    return h->magic == magic_value && h->version == layout_version && h->size == size_;
}

void StatusBoard::renew_epoch(const std::vector<std::string>& names) {
    Header* h = header();
    SpinGuard guard(h->lock);
    CertificateSlot* certs = certificates(base_);
    for (std::uint64_t i = 0; i < h->certificate_slots; i++) certs[i].in_use = 0;
    IssuerSlot* iss = issuers(base_, h->certificate_slots);
    for (std::uint64_t i = 0; i < h->issuer_slots; i++) {
        IssuerSlot& s = iss[i];
        if (!s.in_use) continue;
        if (std::find(names.begin(), names.end(), s.name.get()) == names.end()) {
            s.in_use = 0;
            continue;
        }
        // The counters go on (Prometheus counters should only reset with
        // the process); what the old engine knew is its own.
        s.account.set("");
        s.state.set("");
        s.error.set("");
        s.retry_after = 0;
        s.dns_persist.set("");
    }
    h->epoch.fetch_add(1);
}

std::uint64_t StatusBoard::epoch() const { return header()->epoch.load(); }

bool StatusBoard::update_certificate(std::uint64_t epoch, std::string_view id,
                                     const std::function<void(CertificateStatus&)>& change) {
    Header* h = header();
    CertificateStatus st;
    {
        SpinGuard guard(h->lock);
        if (h->epoch.load() != epoch) return false;
        CertificateSlot* s = find_certificate(certificates(base_), h->certificate_slots, id, true);
        if (s == nullptr) return false;
        load(*s, st);
    }
    // The change runs outside the lock (it allocates); only the engine's
    // StatusSink writes records, one event at a time, and a worker's
    // renew-now request is merged back below.
    std::time_t asked = st.renew_requested;
    change(st);
    SpinGuard guard(h->lock);
    if (h->epoch.load() != epoch) return false;
    CertificateSlot* s = find_certificate(certificates(base_), h->certificate_slots, id, true);
    if (s == nullptr) return false;
    if (s->renew_requested != asked && st.renew_requested == asked) {
        st.renew_requested = s->renew_requested;
    }
    store(*s, st);
    return true;
}

bool StatusBoard::update_issuer(std::uint64_t epoch, std::string_view name,
                                const std::function<void(IssuerStatus&)>& change) {
    Header* h = header();
    IssuerStatus st;
    SpinGuard guard(h->lock);
    if (h->epoch.load() != epoch) return false;
    IssuerSlot* s =
        find(issuers(base_, h->certificate_slots), h->issuer_slots, &IssuerSlot::name, name, true);
    if (s == nullptr) return false;
    load(*s, st);
    change(st);
    store(*s, st);
    return true;
}

std::optional<CertificateStatus> StatusBoard::certificate(std::string_view id) const {
    Header* h = header();
    CertificateStatus st;
    SpinGuard guard(h->lock);
    CertificateSlot* s = find_certificate(certificates(base_), h->certificate_slots, id, false);
    if (s == nullptr) return std::nullopt;
    load(*s, st);
    return st;
}

std::optional<IssuerStatus> StatusBoard::issuer(std::string_view name) const {
    Header* h = header();
    IssuerStatus st;
    SpinGuard guard(h->lock);
    IssuerSlot* s =
        find(issuers(base_, h->certificate_slots), h->issuer_slots, &IssuerSlot::name, name, false);
    if (s == nullptr) return std::nullopt;
    load(*s, st);
    return st;
}

bool StatusBoard::request_renewal(std::string_view id, std::time_t now) {
    Header* h = header();
    {
        SpinGuard guard(h->lock);
        CertificateSlot* s = find_certificate(certificates(base_), h->certificate_slots, id, true);
        if (s == nullptr) return false;
        s->renew_requested = std::max<std::int64_t>(now, 1);
    }
    h->requests.fetch_add(1);
    return true;
}

std::uint64_t StatusBoard::request_sequence() const { return header()->requests.load(); }

std::vector<std::string> StatusBoard::take_renew_requests() {
    std::vector<std::string> ids;
    Header* h = header();
    SpinGuard guard(h->lock);
    CertificateSlot* certs = certificates(base_);
    for (std::uint64_t i = 0; i < h->certificate_slots; i++) {
        if (certs[i].in_use && certs[i].renew_requested != 0) {
            ids.push_back(certs[i].id.get());
            certs[i].renew_requested = 0;
        }
    }
    return ids;
}

}  // namespace acme
