#include "common/time_zone.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace taskpipe {
namespace {

using std::chrono::hours;
using std::chrono::local_days;
using std::chrono::local_seconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;
using Kind = TimeZone::Resolution::Kind;

sys_seconds Utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  return sys_seconds{sys_days{std::chrono::year{y} / mo / d}} + hours{h} + minutes{mi};
}
local_seconds Wall(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  return local_seconds{local_days{std::chrono::year{y} / mo / d}} + hours{h} + minutes{mi};
}

TimeZone Zone(const char* name) {
  StatusOr<TimeZone> zone = TimeZone::Locate(name);
  EXPECT_TRUE(zone.ok()) << zone.status().ToString();
  return zone.ok() ? *zone : TimeZone::Utc();
}

TEST(TimeZone, Locate) {
  EXPECT_EQ(Zone("UTC").name(), "UTC");
  EXPECT_EQ(Zone("America/New_York").name(), "America/New_York");
  for (const char* bad : {"Mars/Base", "", "utc", "America/New_York ", "../../etc/passwd", "/etc/passwd"}) {
    StatusOr<TimeZone> zone = TimeZone::Locate(bad);
    ASSERT_FALSE(zone.ok()) << bad;
    EXPECT_EQ(zone.status().message(), "unknown time zone \"" + std::string(bad) + "\"");
  }
  StatusOr<TimeZone> binary = TimeZone::Locate(std::string("Eur\x01ope", 7));
  ASSERT_FALSE(binary.ok());
  EXPECT_EQ(binary.status().message(), "unknown time zone \"Eur\\x01ope\"");
}

TEST(TimeZone, Offsets) {
  const TimeZone ny = Zone("America/New_York");
  EXPECT_EQ(ny.OffsetAt(Utc(2026, 1, 1)), hours{-5});
  EXPECT_EQ(ny.OffsetAt(Utc(2026, 7, 1)), hours{-4});
  EXPECT_EQ(ny.OffsetAt(Utc(2026, 3, 8, 6, 59)), hours{-5});
  EXPECT_EQ(ny.OffsetAt(Utc(2026, 3, 8, 7)), hours{-4});
  // Beyond the transitions listed in the file (2037): the footer's POSIX rule.
  EXPECT_EQ(ny.OffsetAt(Utc(2050, 7, 1)), hours{-4});
  EXPECT_EQ(ny.OffsetAt(Utc(2050, 12, 1)), hours{-5});
  EXPECT_EQ(ny.OffsetAt(Utc(2050, 3, 13, 6, 59)), hours{-5});
  EXPECT_EQ(ny.OffsetAt(Utc(2050, 3, 13, 7)), hours{-4});
  EXPECT_EQ(ny.OffsetAt(Utc(2199, 7, 1)), hours{-4});
  EXPECT_EQ(Zone("Asia/Kathmandu").OffsetAt(Utc(2026, 1, 1)), hours{5} + minutes{45});
  EXPECT_EQ(Zone("Asia/Kathmandu").OffsetAt(Utc(2150, 1, 1)), hours{5} + minutes{45});
  const TimeZone lord_howe = Zone("Australia/Lord_Howe");
  EXPECT_EQ(lord_howe.OffsetAt(Utc(2026, 7, 1)), hours{10} + minutes{30});
  EXPECT_EQ(lord_howe.OffsetAt(Utc(2026, 12, 1)), hours{11});
  EXPECT_EQ(lord_howe.OffsetAt(Utc(2060, 7, 1)), hours{10} + minutes{30});
  EXPECT_EQ(lord_howe.OffsetAt(Utc(2060, 12, 1)), hours{11});
  EXPECT_EQ(TimeZone::Utc().OffsetAt(Utc(2026, 7, 1)), seconds{0});
}

TEST(TimeZone, Resolve) {
  const TimeZone ny = Zone("America/New_York");
  TimeZone::Resolution r = ny.Resolve(Wall(2026, 6, 1, 12));
  EXPECT_EQ(r.kind, Kind::kUnique);
  EXPECT_EQ(r.first, Utc(2026, 6, 1, 16));

  r = ny.Resolve(Wall(2026, 3, 8, 2, 30));  // spring forward
  EXPECT_EQ(r.kind, Kind::kSkipped);
  EXPECT_EQ(r.first, Utc(2026, 3, 8, 7));  // the gap ends at 03:00 EDT
  EXPECT_EQ(ny.Resolve(Wall(2026, 3, 8, 2)).kind, Kind::kSkipped);
  EXPECT_EQ(ny.Resolve(Wall(2026, 3, 8, 3)).kind, Kind::kUnique);
  EXPECT_EQ(ny.Resolve(Wall(2026, 3, 8, 1, 59)).kind, Kind::kUnique);

  r = ny.Resolve(Wall(2026, 11, 1, 1, 30));  // fall back
  EXPECT_EQ(r.kind, Kind::kRepeated);
  EXPECT_EQ(r.first, Utc(2026, 11, 1, 5, 30));
  EXPECT_EQ(r.second, Utc(2026, 11, 1, 6, 30));
  EXPECT_EQ(ny.Resolve(Wall(2026, 11, 1, 2)).kind, Kind::kUnique);
  EXPECT_EQ(ny.Resolve(Wall(2026, 11, 1, 0, 59)).kind, Kind::kUnique);

  const TimeZone lord_howe = Zone("Australia/Lord_Howe");
  r = lord_howe.Resolve(Wall(2026, 10, 4, 2, 15));  // 02:00 -> 02:30
  EXPECT_EQ(r.kind, Kind::kSkipped);
  EXPECT_EQ(r.first, Utc(2026, 10, 3, 15, 30));
  r = lord_howe.Resolve(Wall(2026, 4, 5, 1, 45));  // 02:00 -> 01:30
  EXPECT_EQ(r.kind, Kind::kRepeated);
  EXPECT_EQ(r.first, Utc(2026, 4, 4, 14, 45));
  EXPECT_EQ(r.second, Utc(2026, 4, 4, 15, 15));

  // Samoa skipped 2011-12-30 entirely (from -10 to +14).
  r = Zone("Pacific/Apia").Resolve(Wall(2011, 12, 30, 12));
  EXPECT_EQ(r.kind, Kind::kSkipped);
  EXPECT_EQ(r.first, Utc(2011, 12, 30, 10));

  // After 2037, from the POSIX rule.
  EXPECT_EQ(ny.Resolve(Wall(2050, 3, 13, 2, 30)).kind, Kind::kSkipped);
  EXPECT_EQ(ny.Resolve(Wall(2050, 11, 6, 1, 30)).kind, Kind::kRepeated);
}

TEST(TimeZone, FromPosixRule) {
  StatusOr<TimeZone> us = TimeZone::FromPosixRule("EST5EDT,M3.2.0,M11.1.0");
  ASSERT_TRUE(us.ok()) << us.status().ToString();
  EXPECT_EQ(us->OffsetAt(Utc(2026, 1, 1)), hours{-5});
  EXPECT_EQ(us->OffsetAt(Utc(2026, 3, 8, 6, 59)), hours{-5});
  EXPECT_EQ(us->OffsetAt(Utc(2026, 3, 8, 7)), hours{-4});
  EXPECT_EQ(us->OffsetAt(Utc(2026, 11, 1, 5, 59)), hours{-4});
  EXPECT_EQ(us->OffsetAt(Utc(2026, 11, 1, 6)), hours{-5});

  StatusOr<TimeZone> lord_howe = TimeZone::FromPosixRule("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
  ASSERT_TRUE(lord_howe.ok()) << lord_howe.status().ToString();
  EXPECT_EQ(lord_howe->OffsetAt(Utc(2026, 4, 4, 14, 59)), hours{11});
  EXPECT_EQ(lord_howe->OffsetAt(Utc(2026, 4, 4, 15)), hours{10} + minutes{30});
  EXPECT_EQ(lord_howe->OffsetAt(Utc(2026, 10, 3, 15, 29)), hours{10} + minutes{30});
  EXPECT_EQ(lord_howe->OffsetAt(Utc(2026, 10, 3, 15, 30)), hours{11});

  // Greenland's rule uses a negative transition time (RFC 8536 extension).
  StatusOr<TimeZone> nuuk = TimeZone::FromPosixRule("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
  ASSERT_TRUE(nuuk.ok()) << nuuk.status().ToString();
  EXPECT_EQ(nuuk->OffsetAt(Utc(2026, 7, 1)), hours{-1});
  EXPECT_EQ(nuuk->OffsetAt(Utc(2026, 1, 1)), hours{-2});
  // Julian days.
  StatusOr<TimeZone> julian = TimeZone::FromPosixRule("AAA3BBB,J60/2,300");
  ASSERT_TRUE(julian.ok()) << julian.status().ToString();
  EXPECT_EQ(julian->OffsetAt(Utc(2028, 3, 1, 5)), hours{-2});  // J60 is March 1 even in leap years
  EXPECT_EQ(julian->OffsetAt(Utc(2028, 2, 29, 12)), hours{-3});

  for (const char* bad :
       {"", "E", "EST", "5EDT", "EST5EDT,M13.1.0,M11.1.0", "EST5EDT,M3.2.0", "EST5EDT,M3.6.0,M11.1.0",
        "EST5EDT,M3.2.7,M11.1.0", "EST5EDT,J0,J100", "EST5EDT,M3.2.0,M11.1.0x", "<EST5", "EST99"}) {
    StatusOr<TimeZone> zone = TimeZone::FromPosixRule(bad);
    EXPECT_FALSE(zone.ok()) << bad;
    if (!zone.ok()) {
      EXPECT_NE(zone.status().message().find("invalid POSIX TZ rule"), std::string::npos);
    }
  }
}

// The POSIX rule in each TZif file's footer must reproduce the transitions the file lists for the
// years where both exist, or TimeZone's switch-over in 2037 would be visible.
TEST(TimeZone, FooterRulesAgreeWithListedTransitions) {
  std::ifstream tab("/usr/share/zoneinfo/zone1970.tab");
  ASSERT_TRUE(tab) << "tzdata is not installed";
  std::string line;
  int checked = 0;
  while (std::getline(tab, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string codes, coordinates, name;
    fields >> codes >> coordinates >> name;
    std::ifstream file("/usr/share/zoneinfo/" + name, std::ios::binary);
    std::stringstream content;
    content << file.rdbuf();
    const std::string data = content.str();
    ASSERT_GT(data.size(), 2u) << name;
    const std::size_t newline = data.rfind('\n', data.size() - 2);
    const std::string footer = data.substr(newline + 1, data.size() - newline - 2);
    if (footer.find(',') == std::string::npos) continue;  // no daylight saving time
    // Palestine suspends daylight saving time for Ramadan: its files list those transitions
    // explicitly (through 2086), and the footer rule only takes over after them.
    if (name == "Asia/Gaza" || name == "Asia/Hebron") continue;
    SCOPED_TRACE(name + " " + footer);
    StatusOr<TimeZone> rule = TimeZone::FromPosixRule(footer);
    ASSERT_TRUE(rule.ok()) << rule.status().ToString();
    const TimeZone listed = Zone(name.c_str());
    for (sys_seconds t = Utc(2027, 1, 1); t < Utc(2037, 1, 1); t += hours{12}) {
      ASSERT_EQ(listed.OffsetAt(t).count(), rule->OffsetAt(t).count()) << t.time_since_epoch().count();
    }
    ++checked;
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace taskpipe
