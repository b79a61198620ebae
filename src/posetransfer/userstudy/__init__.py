"""The paper's user study (Table 3): a real-or-generated judgement server and its report.

`create_study` draws the protocol into one SQLite file (`posetransfer.userstudy.store`), the
server (`posetransfer.userstudy.server`) runs it for raters under the rules of
`posetransfer.userstudy.protocol`, and `write_report` gives R2G and G2R with bootstrap intervals
(`posetransfer.userstudy.report`).
"""

from posetransfer.userstudy.report import study_result, write_report
from posetransfer.userstudy.store import Protocol, create_study

__all__ = ["Protocol", "create_study", "study_result", "write_report"]
