// Names of stored certificates, shared by every storage backend and the glue.
#include "storage.h"

#include <algorithm>

namespace acme {

std::string certificate_basename(const std::vector<Identifier>& ids, KeyType key_type) {
    if (ids.empty()) throw Error("a certificate needs at least one identifier");

    // The hash covers the identifier set and the key type, so reordering
    // server_name keeps the files while any real change gets new ones.
    std::vector<Identifier> sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    std::string input;
    for (const Identifier& id : sorted) {
        input += id.type_name();
        input += ':';
        input += id.value;
        input += '\n';
    }
    input += key_type_name(key_type);

    std::string name = ids.front().value;
    std::replace(name.begin(), name.end(), '*', '_');
    // File names have at most 255 bytes, and the longest item name adds
    // ".order.json.tmp.<pid>.<tid>" to the id: a long first name is cut,
    // the hash keeps ids apart.
    if (name.size() > max_basename_name) name.resize(max_basename_name);
    return name + "-" + hex(sha256(input)).substr(0, 8);
}

}  // namespace acme
