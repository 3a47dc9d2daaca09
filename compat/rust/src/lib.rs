//! Empty: the suite lives in tests/.
