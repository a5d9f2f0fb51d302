//! Fixed vocabularies: names, user agents, platforms, project titles, messages. Everything here is data;
//! choices among these tables are made by the simulation with its seeded random number generator.

/// First names for display names.
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Maria", "James", "Aisha", "Robert", "Mei", "Carlos", "Emily", "David", "Priya", "Michael", "Sofia",
    "Daniel", "Fatima", "Chris", "Olivia", "Kwame", "Hannah", "Luis", "Grace", "Ahmed", "Chloe", "Tyler",
    "Yuki", "Andre", "Natalie", "Sam", "Elena", "Marcus", "Ava", "Jordan", "Ines", "Brian", "Leah", "Omar",
    "Rachel", "Diego", "Megan", "Victor", "Zoe", "Ethan",
];

/// Last names for display names and contractor businesses.
pub(crate) const LAST_NAMES: &[&str] = &[
    "Garcia",
    "Smith",
    "Johnson",
    "Nguyen",
    "Patel",
    "Kim",
    "Brown",
    "Martinez",
    "Okafor",
    "Miller",
    "Lopez",
    "Chen",
    "Wilson",
    "Anderson",
    "Rossi",
    "Hernandez",
    "Taylor",
    "Moore",
    "Jackson",
    "Singh",
    "Lee",
    "Walker",
    "Hall",
    "Young",
    "Khan",
    "Allen",
    "Wright",
    "Scott",
    "Torres",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Hill",
    "Campbell",
    "Mitchell",
    "Roberts",
    "Carter",
    "Phillips",
    "Evans",
];

/// Business name endings for contractors.
pub(crate) const CONTRACTOR_SUFFIXES: &[&str] = &[
    "Renovations",
    "Home Services",
    "Construction",
    "Builders",
    "Roofing",
    "Plumbing & Heating",
    "Electric",
    "Landscaping",
    "Painting Co.",
    "Remodeling",
    "Handyman Services",
    "Flooring",
];

/// First and second words of partner (supplier, realtor, ...) names.
pub(crate) const PARTNER_FIRST: &[&str] = &[
    "Summit",
    "Cedar",
    "Keystone",
    "Harbor",
    "Granite",
    "Maple",
    "Pioneer",
    "Bluebird",
    "Northstar",
    "Oakline",
    "Riverbend",
    "Silverline",
];
pub(crate) const PARTNER_SECOND: &[&str] = &[
    "Supply Co.",
    "Lumber",
    "Realty",
    "Home Design",
    "Tile & Stone",
    "Lighting",
    "Appliances",
    "Mortgage",
    "Insurance",
    "Cabinetry",
];

/// User agents of ordinary visitors, with weights (mobile and in-app browsers dominate link clicks).
pub(crate) const USER_AGENTS: &[(&str, u32)] = &[
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
         Version/18.1 Mobile/15E148 Safari/604.1",
        22,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.6778.104 Mobile Safari/537.36",
        16,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 \
         Safari/537.36",
        14,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
         Mobile/15E148 [FBAN/FBIOS;FBAV/489.0.0.45.107;FBBV/662516843;FBDV/iPhone15,3;FBMD/iPhone;FBSN/iOS;\
         FBSV/17.6.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
        10,
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 \
         Chrome/130.0.6723.107 Mobile Safari/537.36 Instagram 357.0.0.25.101 Android (33/13; 420dpi; 1080x2400; \
         Google/google; Pixel 7; panther; panther; en_US; 658193702)",
        7,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) \
         Version/18.1 Safari/605.1.15",
        7,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 \
         Safari/537.36 Edg/131.0.0.0",
        6,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        4,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) \
         SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        5,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 \
         Mobile/15E148 Safari/604.1",
        4,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
        4,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        1,
    ),
];

/// User agents seen in click floods: scripts, headless browsers, or a spoofed ordinary browser.
pub(crate) const FLOOD_USER_AGENTS: &[&str] = &[
    "python-requests/2.32.3",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 \
     Safari/537.36",
    "curl/8.5.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 \
     Safari/537.36",
];

/// First octets of residential and mobile IPv4 ranges (never private, loopback or documentation ranges).
pub(crate) const IPV4_FIRST_OCTETS: &[u8] = &[
    24, 47, 50, 64, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 96, 97, 98, 99, 100, 104, 107, 108, 142, 162,
    173, 174, 184, 208, 209,
];
/// First octets of hosting ranges, where click floods come from.
pub(crate) const IPV4_HOSTING_OCTETS: &[u8] = &[5, 34, 45, 51, 103, 138, 146, 178, 185, 195];
/// First 16 bits of residential IPv6 prefixes.
pub(crate) const IPV6_PREFIXES: &[u16] = &[0x2600, 0x2601, 0x2603, 0x2605, 0x2a01, 0x2a02, 0x2804, 0x2405];

/// Share platforms (catalogue spelling) with weights.
pub(crate) const PLATFORMS: &[(&str, u32)] = &[
    ("facebook", 26),
    ("whatsapp", 13),
    ("instagram", 12),
    ("email", 11),
    ("twitter", 7),
    ("linkedin", 6),
    ("pinterest", 6),
    ("sms", 7),
    ("copy_link", 9),
    ("other", 3),
];

/// Referral program ids; beyond these, `program-<n>`.
pub(crate) const PROGRAMS: &[&str] = &[
    "program-standard",
    "program-contractor",
    "program-partner",
    "program-spring-2026",
    "program-vip",
];

/// Reward of a referral in each program (by index modulo the table length): type and amount in cents.
pub(crate) const PROGRAM_REWARDS: &[(&str, u64)] = &[
    ("credit", 5_000),
    ("cash", 10_000),
    ("cash", 15_000),
    ("discount", 2_500),
    ("points", 100_000),
];

/// Project categories: name, typical awarded amount range in dollars, titles.
pub(crate) const CATEGORIES: &[(&str, u32, u32, [&str; 3])] = &[
    (
        "kitchen",
        15_000,
        65_000,
        [
            "Kitchen remodel with new island",
            "Replace kitchen cabinets and countertops",
            "Galley kitchen refresh",
        ],
    ),
    (
        "bathroom",
        8_000,
        35_000,
        [
            "Master bathroom renovation",
            "Convert tub to walk-in shower",
            "Half bath update",
        ],
    ),
    (
        "roofing",
        7_000,
        28_000,
        [
            "Replace asphalt shingle roof",
            "Repair storm-damaged roof",
            "Install new gutters",
        ],
    ),
    (
        "landscaping",
        2_500,
        20_000,
        [
            "Backyard landscaping and patio",
            "Front yard xeriscape",
            "Install irrigation system",
        ],
    ),
    (
        "painting",
        1_200,
        9_000,
        [
            "Interior painting, 3 bedrooms",
            "Exterior house painting",
            "Kitchen cabinet painting",
        ],
    ),
    (
        "flooring",
        3_000,
        16_000,
        [
            "Install hardwood floors",
            "Replace carpet with luxury vinyl plank",
            "Tile entryway and hall",
        ],
    ),
    (
        "plumbing",
        250,
        4_500,
        [
            "Replace water heater",
            "Repair leaking main line",
            "Install new bathroom fixtures",
        ],
    ),
    (
        "electrical",
        400,
        6_000,
        [
            "Upgrade electrical panel to 200A",
            "Install EV charger in garage",
            "Add recessed lighting",
        ],
    ),
    (
        "hvac",
        3_500,
        16_000,
        [
            "Replace central AC unit",
            "Install ductless mini-split",
            "Furnace replacement",
        ],
    ),
    (
        "outdoor",
        4_000,
        30_000,
        [
            "Build composite deck",
            "Install privacy fence",
            "Screened porch addition",
        ],
    ),
];

/// Share messages by content type (`project`, `testimonial`, `profile`, `referral_link`, `portfolio`).
pub(crate) const SHARE_MESSAGES: [&[&str]; 5] = [
    &[
        "Check out my new renovation project!",
        "Before and after: so happy with how this turned out",
        "Finally done! Found a great contractor on InstaBids",
        "Looking for bids on this one, any recommendations?",
    ],
    &[
        "Thank you for the kind words!",
        "Another happy customer",
        "This review made our week",
    ],
    &["Find me on InstaBids", "Now on InstaBids, come say hi"],
    &[
        "Join InstaBids with my link and we both get a reward",
        "Planning a project? Use my referral link",
        "Get a bonus on your first project with my code",
    ],
    &[
        "Some of our recent work",
        "Proud of this job the crew did last month",
        "Booking projects for the spring",
    ],
];

/// Testimonial excerpts by rating (index 0 is rating 1).
pub(crate) const EXCERPTS: [&[&str]; 5] = [
    &["Project went over budget and took twice as long as promised."],
    &["Work was finished, but it needed several call-backs to get right."],
    &["Decent job overall; communication could have been better."],
    &[
        "Great quality work. A few small delays, but worth it.",
        "Good crew and a fair price, would hire again.",
    ],
    &[
        "Outstanding work, on time and on budget. Highly recommend!",
        "Professional crew, spotless cleanup, beautiful result.",
        "They turned our outdated kitchen into the heart of our home.",
    ],
];

/// Leaderboards fed by conversions: id and period (see `model::Period`).
pub(crate) const BOARDS: &[&str] = &["daily", "weekly", "monthly", "all-time"];
