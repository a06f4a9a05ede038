"""The faust app and one subpackage per pipeline stage."""
