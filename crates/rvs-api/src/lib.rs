//! rvs-api
