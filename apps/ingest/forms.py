"""Forms of the key management pages."""

from datetime import timedelta

from django import forms

GRACE_CHOICES = {
    "0": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


class KeyCreateForm(forms.Form):
    service = forms.RegexField(
        regex=r"^[a-z0-9][a-z0-9_-]{0,99}$",
        max_length=100,
        error_messages={"invalid": "Use lowercase letters, digits, '-' and '_'."},
    )
    stage = forms.CharField(max_length=50)
    can_forward = forms.BooleanField(required=False, label="May forward records for other services")
    label = forms.CharField(max_length=100, required=False)


class KeyRotateForm(forms.Form):
    grace = forms.ChoiceField(
        choices=[
            ("0", "immediately"),
            ("1h", "after 1 hour"),
            ("24h", "after 24 hours"),
            ("7d", "after 7 days"),
        ],
        initial="24h",
        label="Old key stops working",
    )

    def grace_period(self) -> timedelta:
        return GRACE_CHOICES[self.cleaned_data["grace"]]
