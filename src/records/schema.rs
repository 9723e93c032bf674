//! The record types: their fields, kinds, enumerations, defaults, relations
//! and the statuses that carry a meaning of their own (semantic events).
//!
//! This table is the single description of a record type: validation, the
//! OpenAPI document and the event catalogue are all derived from it.

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldKind {
    /// A string of at most `max` characters.
    Text {
        max: usize,
    },
    Email,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339.
    Instant,
    Integer {
        min: i64,
        max: i64,
    },
    Decimal {
        min: f64,
        max: f64,
    },
    Bool,
    Enum(&'static [&'static str]),
    /// The integer id of a live record of the named type.
    Reference(&'static str),
    /// A postal address object with the fields of [`ADDRESS_FIELDS`].
    Address,
}

/// A value the server fills in on create when the client gives none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    None,
    Str(&'static str),
    Bool(bool),
}

#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    pub default: Default,
}

/// When a record enters `status`, the event `<type>.<event>` is emitted too.
#[derive(Debug, Clone, Copy)]
pub struct StatusEvent {
    pub status: &'static str,
    pub event: &'static str,
    pub description: &'static str,
}

#[derive(Debug)]
pub struct RecordType {
    /// Singular, used in event names and the `object` field.
    pub name: &'static str,
    /// Plural, used in paths.
    pub plural: &'static str,
    /// For documents: `Patient`, `LabResult`.
    pub title: &'static str,
    pub description: &'static str,
    pub fields: &'static [FieldSpec],
    pub status_events: &'static [StatusEvent],
}

impl RecordType {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Types with a `patient_id` can be listed by patient.
    pub fn patient_scoped(&self) -> bool {
        self.field("patient_id").is_some()
    }
}

pub const ADDRESS_FIELDS: &[&str] = &["line1", "line2", "city", "state", "postal_code", "country"];

const fn f(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: false,
        default: Default::None,
    }
}

const fn req(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: true,
        default: Default::None,
    }
}

const fn status(values: &'static [&'static str], default: &'static str) -> FieldSpec {
    FieldSpec {
        name: "status",
        kind: FieldKind::Enum(values),
        required: false,
        default: Default::Str(default),
    }
}

const SHORT: FieldKind = FieldKind::Text { max: 200 };
const MEDIUM: FieldKind = FieldKind::Text { max: 1000 };
const LONG: FieldKind = FieldKind::Text { max: 20_000 };
const COUNT: FieldKind = FieldKind::Integer {
    min: 0,
    max: 1_000_000,
};
const PATIENT: FieldKind = FieldKind::Reference("patient");
const PROVIDER: FieldKind = FieldKind::Reference("provider");

pub static PROVIDER_TYPE: RecordType = RecordType {
    name: "provider",
    plural: "providers",
    title: "Provider",
    description: "A clinician of the practice.",
    fields: &[
        req("first_name", SHORT),
        req("last_name", SHORT),
        req("email", FieldKind::Email),
        f("npi", FieldKind::Text { max: 10 }),
        f("specialty", SHORT),
        FieldSpec {
            name: "active",
            kind: FieldKind::Bool,
            required: false,
            default: Default::Bool(true),
        },
    ],
    status_events: &[],
};

pub static PATIENT_TYPE: RecordType = RecordType {
    name: "patient",
    plural: "patients",
    title: "Patient",
    description: "A person receiving care.",
    fields: &[
        req("first_name", SHORT),
        req("last_name", SHORT),
        req("date_of_birth", FieldKind::Date),
        f(
            "sex",
            FieldKind::Enum(&["female", "male", "other", "unknown"]),
        ),
        f("email", FieldKind::Email),
        f("phone", FieldKind::Text { max: 40 }),
        f("address", FieldKind::Address),
        f("primary_provider_id", PROVIDER),
    ],
    status_events: &[],
};

pub static APPOINTMENT_TYPE: RecordType = RecordType {
    name: "appointment",
    plural: "appointments",
    title: "Appointment",
    description: "A scheduled visit of a patient with a provider.",
    fields: &[
        req("patient_id", PATIENT),
        req("provider_id", PROVIDER),
        req("start_at", FieldKind::Instant),
        req("end_at", FieldKind::Instant),
        status(
            &[
                "scheduled",
                "confirmed",
                "checked_in",
                "completed",
                "cancelled",
                "no_show",
            ],
            "scheduled",
        ),
        f("appointment_type", SHORT),
        f("location", SHORT),
        f("reason", MEDIUM),
    ],
    status_events: &[
        StatusEvent {
            status: "checked_in",
            event: "checked_in",
            description: "The patient checked in for the appointment.",
        },
        StatusEvent {
            status: "cancelled",
            event: "cancelled",
            description: "The appointment was cancelled.",
        },
    ],
};

pub static ENCOUNTER_TYPE: RecordType = RecordType {
    name: "encounter",
    plural: "encounters",
    title: "Encounter",
    description: "A clinical encounter and its note.",
    fields: &[
        req("patient_id", PATIENT),
        req("provider_id", PROVIDER),
        f("appointment_id", FieldKind::Reference("appointment")),
        req("occurred_on", FieldKind::Date),
        f("encounter_type", SHORT),
        f("chief_complaint", MEDIUM),
        f("note", LONG),
        status(&["open", "signed"], "open"),
        f("signed_at", FieldKind::Instant),
    ],
    status_events: &[StatusEvent {
        status: "signed",
        event: "signed",
        description: "The encounter note was signed.",
    }],
};

pub static PRESCRIPTION_TYPE: RecordType = RecordType {
    name: "prescription",
    plural: "prescriptions",
    title: "Prescription",
    description: "A medication prescribed to a patient.",
    fields: &[
        req("patient_id", PATIENT),
        req("prescriber_id", PROVIDER),
        req("medication", SHORT),
        f("dosage", SHORT),
        f("route", SHORT),
        f("frequency", SHORT),
        f("quantity", COUNT),
        f("refills", FieldKind::Integer { min: 0, max: 99 }),
        f("start_date", FieldKind::Date),
        f("end_date", FieldKind::Date),
        status(&["active", "discontinued", "completed"], "active"),
    ],
    status_events: &[StatusEvent {
        status: "discontinued",
        event: "discontinued",
        description: "The prescription was discontinued.",
    }],
};

pub static LAB_RESULT_TYPE: RecordType = RecordType {
    name: "lab_result",
    plural: "lab_results",
    title: "LabResult",
    description: "The result of a laboratory test.",
    fields: &[
        req("patient_id", PATIENT),
        f("ordering_provider_id", PROVIDER),
        req("test_name", SHORT),
        f("loinc_code", FieldKind::Text { max: 20 }),
        f("value", SHORT),
        f("unit", FieldKind::Text { max: 40 }),
        f("reference_range", SHORT),
        f(
            "flag",
            FieldKind::Enum(&["normal", "low", "high", "critical"]),
        ),
        status(&["preliminary", "final", "corrected"], "preliminary"),
        f("collected_at", FieldKind::Instant),
        f("resulted_at", FieldKind::Instant),
    ],
    status_events: &[StatusEvent {
        status: "final",
        event: "finalized",
        description: "The lab result became final.",
    }],
};

pub static VITAL_TYPE: RecordType = RecordType {
    name: "vital",
    plural: "vitals",
    title: "Vital",
    description: "A set of vital signs measured at one time.",
    fields: &[
        req("patient_id", PATIENT),
        req("measured_at", FieldKind::Instant),
        f("systolic_mmhg", FieldKind::Integer { min: 0, max: 400 }),
        f("diastolic_mmhg", FieldKind::Integer { min: 0, max: 300 }),
        f("heart_rate_bpm", FieldKind::Integer { min: 0, max: 400 }),
        f("respiratory_rate", FieldKind::Integer { min: 0, max: 200 }),
        f(
            "temperature_c",
            FieldKind::Decimal {
                min: 20.0,
                max: 50.0,
            },
        ),
        f(
            "weight_kg",
            FieldKind::Decimal {
                min: 0.0,
                max: 1000.0,
            },
        ),
        f(
            "height_cm",
            FieldKind::Decimal {
                min: 0.0,
                max: 300.0,
            },
        ),
        f(
            "spo2_percent",
            FieldKind::Decimal {
                min: 0.0,
                max: 100.0,
            },
        ),
    ],
    status_events: &[],
};

const CLINICAL_STATUS: &[&str] = &["active", "inactive", "resolved"];

pub static ALLERGY_TYPE: RecordType = RecordType {
    name: "allergy",
    plural: "allergies",
    title: "Allergy",
    description: "An allergy or intolerance of a patient.",
    fields: &[
        req("patient_id", PATIENT),
        req("allergen", SHORT),
        f("reaction", MEDIUM),
        f("severity", FieldKind::Enum(&["mild", "moderate", "severe"])),
        status(CLINICAL_STATUS, "active"),
    ],
    status_events: &[],
};

pub static PROBLEM_TYPE: RecordType = RecordType {
    name: "problem",
    plural: "problems",
    title: "Problem",
    description: "An entry of a patient's problem list.",
    fields: &[
        req("patient_id", PATIENT),
        req("description", MEDIUM),
        f("icd10_code", FieldKind::Text { max: 10 }),
        f("onset_date", FieldKind::Date),
        status(CLINICAL_STATUS, "active"),
    ],
    status_events: &[],
};

pub static DOCUMENT_TYPE: RecordType = RecordType {
    name: "document",
    plural: "documents",
    title: "Document",
    description: "The metadata of a document in a patient's chart.",
    fields: &[
        req("patient_id", PATIENT),
        req("title", SHORT),
        f("category", SHORT),
        f("content_type", FieldKind::Text { max: 100 }),
        f(
            "size_bytes",
            FieldKind::Integer {
                min: 0,
                max: i64::MAX,
            },
        ),
    ],
    status_events: &[],
};

pub static TASK_TYPE: RecordType = RecordType {
    name: "task",
    plural: "tasks",
    title: "Task",
    description: "A to-do item for the practice's staff.",
    fields: &[
        req("title", SHORT),
        f("assignee_id", PROVIDER),
        f("patient_id", PATIENT),
        f("due_date", FieldKind::Date),
        FieldSpec {
            name: "priority",
            kind: FieldKind::Enum(&["low", "normal", "high"]),
            required: false,
            default: Default::Str("normal"),
        },
        status(&["open", "done"], "open"),
    ],
    status_events: &[],
};

/// Every record type, in the order the documentation lists them.
pub static RECORD_TYPES: &[&RecordType] = &[
    &PROVIDER_TYPE,
    &PATIENT_TYPE,
    &APPOINTMENT_TYPE,
    &ENCOUNTER_TYPE,
    &PRESCRIPTION_TYPE,
    &LAB_RESULT_TYPE,
    &VITAL_TYPE,
    &ALLERGY_TYPE,
    &PROBLEM_TYPE,
    &DOCUMENT_TYPE,
    &TASK_TYPE,
];

pub fn by_name(name: &str) -> Option<&'static RecordType> {
    RECORD_TYPES.iter().copied().find(|t| t.name == name)
}
